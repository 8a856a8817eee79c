"""Read-only reports over the book: aging (with its SVG chart), overdue, DSO, collections, statements."""
