"""api.jobs.batchgc: the batch jobs' collector settings hold inside the job and are put back after it."""

import gc

import pytest

from api.jobs.batchgc import GC_THRESHOLD, fewer_gc_passes


def test_settings_apply_inside_and_are_restored_even_after_an_error():
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with pytest.raises(RuntimeError):
        with fewer_gc_passes():
            assert gc.get_threshold() == (max(before[0], GC_THRESHOLD), *before[1:])
            assert gc.get_freeze_count() > frozen  # what existed before the job is left out of passes
            raise RuntimeError("the job failed")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
