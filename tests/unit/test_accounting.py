"""The load tests' accounting finds gaps, reorders and duplicates in plain and compound ids
(it must, or the chaos suite's zeros would prove nothing)."""
from tests.support.accounting import StreamStats


def account(*ids):
    stats = StreamStats()
    for n, event_id in enumerate(ids):
        stats.on_message({"type": "new_post", "id": event_id, "ts": 0}, n, live=False)
    return stats


def test_plain_ids_in_order_are_clean_and_a_missing_one_is_a_gap():
    assert account("e-1", "e-2", "e-3").gaps == 0
    assert account("e-1", "e-3").gaps == 1
    assert account("e-1", "e-3", "e-2").reorders == 1
    assert account("e-1", "e-1").duplicates == 1


def test_compound_ids_check_the_feed_part_and_let_the_large_part_jump():
    # Feed events (e-1, e-2, e-3) and large-author events (their l part jumps past other
    # readers' authors) interleaved: clean.
    clean = account("e-1.l-5", "e-1.l-9", "e-2.l-9", "e-2.l-12", "e-3.l-12")
    assert (clean.gaps, clean.reorders, clean.duplicates) == (0, 0, 0)
    assert account("e-1.l-5", "e-3.l-5").gaps == 1  # a feed event missing
    assert account("e-1.l-9", "e-1.l-5").reorders == 1  # the large part went back
    assert account("e-1.l-5", "e-1.l-9", "e-1.l-9").duplicates == 1
    assert account("e-1.l-5", "e-1.m-2").silent_epoch_changes == 1  # unannounced restart
