use super::*;

#[test]
fn packing_keeps_the_generation_and_the_signed_value() {
    for value in [0, 1, -1, 12_345, -12_345, VALUE_MAX, VALUE_MIN] {
        for generation in [0, 1, GEN_MASK] {
            assert_eq!(unpack(pack(generation, value)), (generation, value));
        }
    }
}

#[test]
fn a_slot_saturates_instead_of_wrapping() {
    let most = Amount::new(VALUE_MAX);
    assert_eq!(most.units(), FAST_LIMIT - 1, "an amount is clamped");
    let least = Amount::new(VALUE_MIN);
    assert_eq!(least.units(), 1 - FAST_LIMIT);
    // Five of the largest amounts pass the largest balance: the first
    // two by the atomic add, the rest by the compare-and-swap.
    let window = Window::new();
    for _ in 0..5 {
        window.add(7, most);
    }
    assert_eq!(window.sum(7), VALUE_MAX, "generation 7 is intact");
    window.add(7, Amount::new(-1));
    assert_eq!(window.sum(7), VALUE_MAX - 1);
    let window = Window::new();
    for _ in 0..5 {
        window.add(7, least);
    }
    assert_eq!(window.sum(7), VALUE_MIN);
    assert_eq!(window.sum(17), 0, "and it expires with its generation");
}

#[test]
fn a_slot_reused_by_a_later_generation_starts_from_zero() {
    let window = Window::new();
    window.add(3, Amount::new(100));
    assert_eq!(window.sum(3), 100);
    assert_eq!(
        window.sum(12),
        100,
        "nine generations later it still counts"
    );
    assert_eq!(window.sum(13), 0, "ten generations later it has expired");
    window.add(13, Amount::new(7));
    assert_eq!(
        window.sum(13),
        7,
        "the reused slot does not keep the old 100"
    );
}

#[test]
fn sums_span_every_live_slot() {
    let window = Window::new();
    for generation in 0..10 {
        window.add(generation, Amount::new(1));
    }
    assert_eq!(window.sum(9), 10);
    assert_eq!(window.sum(10), 9);
    assert_eq!(window.sum(15), 4);
}

#[test]
fn a_writer_with_an_older_clock_reading_adds_to_the_later_generation() {
    let window = Window::new();
    window.add(13, Amount::new(5));
    window.add(3, Amount::new(2));
    assert_eq!(window.sum(13), 7, "the later slot is not erased");
}

#[test]
fn a_reader_counts_the_slots_counted_after_its_reading() {
    let window = Window::new();
    window.add(13, Amount::new(5));
    window.add(4, Amount::new(-2));
    assert_eq!(window.sum(4), 3, "the later slot 13 counts at 4");
    assert_eq!(window.sum(13), 3);
    assert_eq!(window.sum(14), 5, "slot 4 leaves the window first");
}

#[test]
fn a_slot_counts_as_later_up_to_later_generations_ahead() {
    let window = Window::new();
    let near = 3 + LATER / SLOTS * SLOTS;
    window.add(near, Amount::new(5));
    window.add(3, Amount::new(2));
    assert_eq!(window.sum(near), 7, "added to the later generation");
    assert_eq!(window.sum(3), 7);

    let window = Window::new();
    let far = near + SLOTS;
    window.add(far, Amount::new(5));
    window.add(3, Amount::new(2));
    assert_eq!(window.sum(3), 2, "too far ahead: an older slot, reset");
    assert_eq!(window.sum(far), 0);
}

#[test]
fn the_fast_path_adds_negative_amounts_without_touching_the_generation() {
    let window = Window::new();
    window.add(4, Amount::new(3));
    window.add(4, Amount::new(-10));
    window.add(4, Amount::new(2));
    assert_eq!(window.sum(4), -5);
    assert_eq!(window.sum(13), -5);
    assert_eq!(window.sum(14), 0);
}

#[test]
fn taking_back_undoes_an_add_in_the_slot_it_was_counted_in() {
    let window = Window::new();
    let mark = window.add(3, Amount::new(-7));
    window.add(8, Amount::new(5));
    window.take_back(mark, -7);
    assert_eq!(window.sum(8), 5);
    assert_eq!(window.sum(12), 5);
    assert_eq!(window.sum(13), 5, "nothing outlives the slot it went to");
}

#[test]
fn an_add_counted_in_a_later_generation_is_taken_back_from_there() {
    let window = Window::new();
    window.add(13, Amount::new(5));
    let mark = window.add(3, Amount::new(-2));
    assert_eq!(window.sum(13), 3);
    window.take_back(mark, -2);
    assert_eq!(window.sum(13), 5);
}

#[test]
fn nothing_is_taken_back_from_a_slot_that_moved_on() {
    let window = Window::new();
    let mark = window.add(3, Amount::new(-2));
    window.add(13, Amount::new(5));
    window.take_back(mark, -2);
    assert_eq!(window.sum(13), 5, "the slot's new generation keeps its own");
    // A slot whose generation left the window, not yet reused, counts
    // for nothing, before and after.
    let window = Window::new();
    let mark = window.add(4, Amount::new(-2));
    assert_eq!(window.sum(14), 0);
    window.take_back(mark, -2);
    assert_eq!(window.sum(14), 0);
}

#[test]
fn generations_past_the_stored_bits_still_find_their_slot() {
    let window = Window::new();
    let late = (1 << GEN_BITS) + 5;
    window.add(late, Amount::new(9));
    assert_eq!(window.sum(late), 9);
    assert_eq!(window.sum(late + 9), 9);
    assert_eq!(window.sum(late + 10), 0);
}
