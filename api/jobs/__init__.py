"""Work over the whole book: the collections sweep, interest accrual, credit review, what-if
simulation, and the scheduler that runs them."""
