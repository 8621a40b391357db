//! What the console draws, played on a small terminal ([`super::vt`]).

use super::vt::Vt;
use super::*;

fn plain() -> Console {
    Console {
        style: Style::default(),
        screen: None,
        scratch: Vec::new(),
        input: Vec::new(),
        stamps: false,
    }
}

/// A console on a pretend terminal `cols` wide and 10 rows high, and that terminal.
fn on_screen(cols: usize) -> (Console, Vt) {
    let mut c = plain();
    c.screen = Some(Screen::new(Modes::pretend(), (cols, 10)));
    (c, Vt::new(10, cols))
}

/// The status line of a console that knows nothing yet, on `cols` columns.
fn st(cols: usize) -> String {
    Status::default().text(None, cols)
}

/// Settles and plays what was written on `vt`.
fn settle(c: &mut Console, vt: &mut Vt) {
    c.scratch.clear();
    c.settle();
    vt.feed(&c.scratch);
}

/// Types `keys`, settles; returns the lines entered.
fn typed(c: &mut Console, vt: &mut Vt, keys: &[u8]) -> String {
    let mut e = Edited::default();
    c.edit(keys, &mut e);
    settle(c, vt);
    String::from_utf8(e.lines).unwrap()
}

#[test]
fn peer_text_is_escaped_in_plain_mode_too() {
    let mut c = plain();
    c.message(b"bob: \x1b]52;c;aGk=\x07 hi\rX", false);
    assert_eq!(c.scratch, b"bob: \\x1b]52;c;aGk=\\x07 hi\\rX\n");
    c.message(b"long", true);
    assert_eq!(c.scratch, b"long [truncated]\n");
}

#[test]
fn a_message_goes_above_a_half_typed_line() {
    let (mut c, mut vt) = on_screen(30);
    settle(&mut c, &mut vt);
    typed(&mut c, &mut vt, b"half a line");
    c.message(b"bob: \x1b[2Jhello", false);
    settle(&mut c, &mut vt);
    assert_eq!(vt.lines(), ["bob: \\x1b[2Jhello", &st(30), "> half a line"]);
    assert_eq!((vt.row, vt.col), (2, 13));
}

#[test]
fn a_wrapped_line_is_edited_in_place_and_survives_messages() {
    let (mut c, mut vt) = on_screen(30);
    settle(&mut c, &mut vt);
    let long = "the quick brown fox jumps over the lazy dog again and again";
    typed(&mut c, &mut vt, long.as_bytes());
    for _ in 0..6 {
        typed(&mut c, &mut vt, b"\x7f"); // Backspace across the wrap: no copies
    }
    c.event("bob (127.0.0.3:2225) joined");
    c.message(b"bob: hi", false);
    settle(&mut c, &mut vt);
    typed(&mut c, &mut vt, b"\x1b[H!"); // Home, then insert at the start
    assert_eq!(
        vt.lines(),
        [
            "-- bob (127.0.0.3:2225) joined",
            "bob: hi",
            &st(30),
            "> !the quick brown fox jumps o",
            "ver the lazy dog again and",
        ]
    );
    assert_eq!((vt.row, vt.col), (3, 3), "the cursor after the inserted !");
}

#[test]
fn enter_takes_the_line_out_of_the_input() {
    let (mut c, mut vt) = on_screen(40);
    settle(&mut c, &mut vt);
    assert_eq!(typed(&mut c, &mut vt, b"hello\r"), "hello\n");
    assert_eq!(
        vt.lines(),
        [&st(40), ">"],
        "shown once, when our copy comes back"
    );
    c.message(b"alice: hello", false);
    settle(&mut c, &mut vt);
    assert_eq!(vt.lines(), ["alice: hello", &st(40), ">"]);
}

#[test]
fn leaving_erases_the_input_and_draws_it_no_more() {
    let (mut c, mut vt) = on_screen(40);
    typed(&mut c, &mut vt, b"never sent");
    c.reply("*alice\n bob\n");
    c.close_input();
    settle(&mut c, &mut vt);
    assert_eq!(vt.lines(), ["*alice", " bob"]);
    c.message(b"late", false);
    settle(&mut c, &mut vt);
    assert_eq!(vt.lines(), ["*alice", " bob", "late"]);
}

#[test]
fn nothing_is_written_when_nothing_changed() {
    let (mut c, mut vt) = on_screen(40);
    settle(&mut c, &mut vt);
    typed(&mut c, &mut vt, b"\x1b[D"); // Left at the start: nothing to do
    assert!(c.scratch.is_empty());
    typed(&mut c, &mut vt, b"\x0c"); // Ctrl-L
    assert!(c
        .scratch
        .starts_with(b"\r\x1b[1A\x1b[2K\x1b[C\x1b[J\r\x1b[H\x1b[2J"));
}

/// Plays the note stdout's queue writes after dropping lines, framed as the
/// console last told it.
fn queue_note(c: &Console, vt: &mut Vt, lost: u64) {
    let s = c.screen.as_ref().unwrap();
    let mut note = s.note_before.clone();
    note.extend_from_slice(
        format!("{lost} lines lost: stdout was not read fast enough").as_bytes(),
    );
    note.extend_from_slice(&s.note_after);
    vt.feed(&note);
}

#[test]
fn the_queues_note_is_an_event_line_and_the_input_is_left_as_it_was() {
    let (mut c, mut vt) = on_screen(20);
    c.style.on = true;
    c.message(b"bob: before the gap", false);
    settle(&mut c, &mut vt);
    // A wrapped input with the cursor on its first row: the note must erase
    // from there, not from the last row.
    typed(
        &mut c,
        &mut vt,
        b"a half typed line that wraps\x01\x1b[C\x1b[C",
    );
    let (row, col) = (vt.row, vt.col);
    queue_note(&c, &mut vt, 120);
    let lines = [
        "bob: before the gap",
        "-- 120 lines lost: s",
        "tdout was not read f",
        "ast enough",
        &st(20),
        "> a half typed line",
        "that wraps",
    ];
    assert_eq!(vt.lines(), lines);
    assert_eq!((vt.row, vt.col), (row + 3, col), "the cursor where it was");
    // What the console draws next starts from the input the note left.
    c.message(b"bob: after it", false);
    settle(&mut c, &mut vt);
    assert_eq!(vt.lines()[..4], lines[..4]);
    assert_eq!(
        vt.lines()[4..],
        [
            "bob: after it",
            &st(20),
            "> a half typed line",
            "that wraps"
        ]
    );
}

#[test]
fn a_rationed_flood_is_said_as_an_event_standing_for_its_lines() {
    let (mut c, mut vt) = on_screen(80);
    settle(&mut c, &mut vt);
    typed(&mut c, &mut vt, b"typing");
    c.lost(40, "127.0.0.2:5000 sent them faster than stdout takes them");
    assert_eq!(c.screen.as_ref().unwrap().stands_for, 39);
    settle(&mut c, &mut vt);
    assert_eq!(
        vt.lines(),
        [
            "-- 40 lines lost: 127.0.0.2:5000 sent them faster than stdout takes them",
            &st(80),
            "> typing"
        ]
    );
    assert_eq!(c.screen.as_ref().unwrap().stands_for, 0, "queued with them");
}

#[test]
fn after_leaving_the_note_erases_the_input_and_does_not_draw_it_again() {
    let (mut c, mut vt) = on_screen(80);
    typed(&mut c, &mut vt, b"never sent");
    c.close_input();
    settle(&mut c, &mut vt);
    queue_note(&c, &mut vt, 7);
    assert_eq!(
        vt.lines(),
        ["-- 7 lines lost: stdout was not read fast enough"]
    );
}

#[test]
fn an_input_taller_than_the_screen_leaves_a_row_for_the_transcript() {
    let (mut c, mut vt) = on_screen(20);
    c.message(b"bob: hi", false);
    settle(&mut c, &mut vt);
    let long: String = (0..60).map(|k| format!("{k:02} ")).collect();
    typed(&mut c, &mut vt, long.as_bytes());
    // 182 columns: 10 rows, of which the last 8, below bob's line and the status.
    assert_eq!(vt.lines()[0], "bob: hi");
    assert_eq!(vt.lines()[1], st(20));
    assert_eq!(vt.lines()[2], " 13 14 15 16 17 18 1");
    assert!(vt.scrolled.is_empty(), "{:?}", vt.scrolled);
    assert_eq!((vt.row, vt.col), (9, 2));
    typed(&mut c, &mut vt, b"\x01"); // Ctrl-A: the first rows
    assert_eq!(
        vt.lines()[..4],
        [
            "bob: hi",
            &st(20),
            "> 00 01 02 03 04 05",
            "06 07 08 09 10 11 12"
        ]
    );
    assert_eq!((vt.row, vt.col), (2, 2));
    assert!(vt.scrolled.is_empty(), "{:?}", vt.scrolled);
}
