import pytest

import pytest
import torch

from gptviz.jobs import JobQueue, threads_per_training
from gptviz.train import Status, TrainConfig, Trainer

from helpers import wait_until


def long_run(config, data):
    return Trainer(config, TrainConfig(max_iters=100_000, batch_size=4, eval_interval=10_000, eval_iters=1,
                                       sample_tokens=0), data)


def test_jobs_beyond_the_limit_wait_in_line_and_start_when_a_slot_frees(small_config, shakespeare_char):
    queue = JobQueue(max_running=1)
    first, second, third = (queue.submit(long_run(small_config, shakespeare_char)) for _ in range(3))
    assert wait_until(lambda: first.step > 0)
    assert queue.running == 1 and queue.waiting == 2
    assert second.status == "queued" and queue.position(second) == 0 and queue.position(third) == 1
    assert queue.position(first) is None
    first.stop()
    assert wait_until(lambda: second.step > 0)  # the next in line starts by itself
    assert first.status == "stopped" and queue.position(third) == 0
    queue.cancel(third)  # leaves the line without ever running
    assert third.status == "stopped" and queue.waiting == 0 and third.step == 0
    queue.cancel(second)
    second.join(10)
    assert second.status == "stopped" and queue.running == 0


def test_a_finished_job_frees_its_slot(small_config, shakespeare_char):
    queue = JobQueue(max_running=1)
    short = Trainer(small_config, TrainConfig(max_iters=3, batch_size=2, eval_iters=1, sample_tokens=0),
                    shakespeare_char)
    queue.submit(short)
    nxt = queue.submit(long_run(small_config, shakespeare_char))
    assert wait_until(lambda: nxt.step > 0)
    assert short.status == "finished"
    nxt.stop()
    nxt.join(10)


def test_a_job_whose_student_left_while_it_waited_never_starts(small_config, shakespeare_char):
    queue = JobQueue(max_running=1)
    first = queue.submit(long_run(small_config, shakespeare_char))
    left = Trainer(small_config, TrainConfig(max_iters=50, batch_size=4, eval_iters=1, sample_tokens=0),
                   shakespeare_char, abandon_after_s=0.2)
    queue.submit(left)
    watched = queue.submit(long_run(small_config, shakespeare_char))
    assert wait_until(lambda: first.step > 0)
    left.last_seen -= 1.0  # its last heartbeat was a second ago (its tab is closed); `watched` has no grace period
    first.stop()
    assert wait_until(lambda: watched.step > 0)  # the slot went past `left` to the next in line
    assert left.status == "stopped" and "Never started" in left.message
    assert left.step == 0 and left.history["eval_step"] == [] and not left.snapshots
    watched.stop()
    watched.join(10)


def test_the_queue_changes_status_through_the_trainers_setter(small_config, shakespeare_char):
    queue = JobQueue(max_running=1)
    first = queue.submit(long_run(small_config, shakespeare_char))
    second = queue.submit(long_run(small_config, shakespeare_char))
    queue.cancel(second)
    statuses = [e.data for e in second.events if e.kind == "status"]
    assert statuses == [{"status": "queued", "message": ""},
                        {"status": "stopped", "message": "Cancelled before it started."}]
    assert second.status is Status.STOPPED and second.done
    queue.cancel(first)
    first.join(10)
    assert [e.data["status"] for e in first.events if e.kind == "status"][-1] == "stopped"


# --- fair slots (issue 21) -------------------------------------------------------------------------

def stop_all(*trainers):
    for t in trainers:
        t.stop()
    for t in trainers:
        t.join(10)


def test_a_tab_that_queues_the_whole_ladder_cannot_starve_the_class(small_config, shakespeare_char):
    """Two slots, one tab queues five: it runs one at a time, and a classmate's run starts next, not sixth."""
    queue = JobQueue(max_running=2, per_owner_running=1, per_owner_waiting=10)
    ladder = [queue.submit(long_run(small_config, shakespeare_char), owner="greedy") for _ in range(5)]
    assert wait_until(lambda: ladder[0].step > 0)
    assert queue.running == 1 and ladder[1].status == "queued"  # the second slot stays free for others
    classmate = queue.submit(long_run(small_config, shakespeare_char), owner="classmate")
    assert wait_until(lambda: classmate.step > 0)  # at once, in the free slot
    late = queue.submit(long_run(small_config, shakespeare_char), owner="late")
    assert queue.ahead(late) == (1, 0)  # one round of turns: greedy's next, then late's
    assert queue.ahead(ladder[2]) == (2, 1) and queue.ahead(ladder[3]) == (3, 2)
    ladder[0].stop()
    assert wait_until(lambda: ladder[1].step > 0)
    classmate.stop()
    assert wait_until(lambda: late.step > 0)  # greedy has one running: the turn passes to late
    assert ladder[2].status == "queued"
    for t in ladder[2:]:
        queue.cancel(t)
    stop_all(ladder[1], late)


def test_a_tab_cannot_queue_more_than_its_share(small_config, shakespeare_char):
    from gptviz.jobs import QueueFull

    queue = JobQueue(max_running=1, per_owner_running=1, per_owner_waiting=2)
    runs = [queue.submit(long_run(small_config, shakespeare_char), owner="tab") for _ in range(3)]  # 1 runs, 2 wait
    with pytest.raises(QueueFull, match="You already have 2 trainings waiting; each tab may queue 2"):
        queue.check_room("tab", 1)
    queue.check_room("another tab", 2)  # others are not affected
    for t in runs[1:]:
        queue.cancel(t)
    stop_all(runs[0])


@pytest.fixture
def torch_threads():
    """The thread count is the process's: give it back after a test that trains in threads."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_cores_are_shared_among_the_running_trainings_as_they_start_and_end(
        torch_threads, small_config, shakespeare_char):
    queue = JobQueue(max_running=2, cores=4)
    first = queue.submit(long_run(small_config, shakespeare_char))
    assert wait_until(lambda: first.threads == 4)  # alone: every core (as torch reports it in the training)
    second = queue.submit(long_run(small_config, shakespeare_char))
    assert wait_until(lambda: first.threads == 2 and second.threads == 2)  # two: half each
    third = queue.submit(long_run(small_config, shakespeare_char))
    assert third.status == "queued" and third.threads == 0  # a third waits for a slot
    first.stop()
    assert wait_until(lambda: third.threads == 2 and second.threads == 2)
    second.stop()
    assert wait_until(lambda: third.threads == 4)  # alone again: all of them
    third.stop()
    third.join(10)
    assert [threads_per_training(2, n) for n in (0, 1, 2, 3)] == [2, 2, 1, 1]
