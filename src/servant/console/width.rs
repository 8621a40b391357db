//! How many terminal columns a character takes: 0, 1 or 2.
//!
//! A small `wcwidth`: combining marks and zero-width characters take no column,
//! East Asian wide and fullwidth characters (CJK, Hangul, kana) and emoji take two,
//! everything else one. The tables are the ranges that matter in chat, taken from
//! Unicode's EastAsianWidth (W and F) and general categories Mn, Me and Cf; where a
//! terminal disagrees (ambiguous-width characters, emoji it draws narrow), the
//! prompt's cursor can be off by a column until the next redraw, never worse.
//! Controls never reach here: the line editor refuses them.

/// Columns `c` takes on a terminal.
pub fn width(c: char) -> usize {
    let u = c as u32;
    if u < 0x300 {
        return 1; // ASCII and Latin-1: the common case, decided at once
    }
    if in_table(u, ZERO) {
        0
    } else if in_table(u, WIDE) {
        2
    } else {
        1
    }
}

/// Columns a whole string takes.
pub fn str_width(s: &str) -> usize {
    s.chars().map(width).sum()
}

/// Binary search of sorted, non-overlapping inclusive ranges.
fn in_table(u: u32, table: &[(u32, u32)]) -> bool {
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < u {
                std::cmp::Ordering::Less
            } else if lo > u {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Combining marks, joiners and other characters drawn over the previous one.
const ZERO: &[(u32, u32)] = &[
    (0x0300, 0x036F), // combining diacritical marks
    (0x0483, 0x0489),
    (0x0591, 0x05BD),
    (0x05BF, 0x05BF),
    (0x05C1, 0x05C2),
    (0x05C4, 0x05C5),
    (0x05C7, 0x05C7),
    (0x0610, 0x061A),
    (0x064B, 0x065F),
    (0x0670, 0x0670),
    (0x06D6, 0x06DC),
    (0x06DF, 0x06E4),
    (0x06E7, 0x06E8),
    (0x06EA, 0x06ED),
    (0x0900, 0x0902), // Devanagari signs
    (0x093C, 0x093C),
    (0x0941, 0x0948),
    (0x094D, 0x094D),
    (0x0E31, 0x0E31), // Thai vowels and tone marks
    (0x0E34, 0x0E3A),
    (0x0E47, 0x0E4E),
    (0x1160, 0x11FF), // Hangul medial vowels and final consonants
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x200B, 0x200D), // zero width space, non-joiner, joiner
    (0x2060, 0x2064),
    (0x20D0, 0x20FF), // combining marks for symbols
    (0xFE00, 0xFE0F), // variation selectors
    (0xFE20, 0xFE2F),
    (0xFEFF, 0xFEFF),
    (0xE0000, 0xE007F), // tags
    (0xE0100, 0xE01EF), // variation selectors supplement
];

/// East Asian wide and fullwidth characters, and emoji shown as pictures.
const WIDE: &[(u32, u32)] = &[
    (0x1100, 0x115F), // Hangul initial consonants
    (0x231A, 0x231B),
    (0x2329, 0x232A),
    (0x23E9, 0x23EC),
    (0x23F0, 0x23F0),
    (0x23F3, 0x23F3),
    (0x25FD, 0x25FE),
    (0x2614, 0x2615),
    (0x2648, 0x2653),
    (0x267F, 0x267F),
    (0x2693, 0x2693),
    (0x26A1, 0x26A1),
    (0x26AA, 0x26AB),
    (0x26BD, 0x26BE),
    (0x26C4, 0x26C5),
    (0x26CE, 0x26CE),
    (0x26D4, 0x26D4),
    (0x26EA, 0x26EA),
    (0x26F2, 0x26F3),
    (0x26F5, 0x26F5),
    (0x26FA, 0x26FA),
    (0x26FD, 0x26FD),
    (0x2705, 0x2705),
    (0x270A, 0x270B),
    (0x2728, 0x2728),
    (0x274C, 0x274C),
    (0x274E, 0x274E),
    (0x2753, 0x2755),
    (0x2757, 0x2757),
    (0x2795, 0x2797),
    (0x27B0, 0x27B0),
    (0x27BF, 0x27BF),
    (0x2B1B, 0x2B1C),
    (0x2B50, 0x2B50),
    (0x2B55, 0x2B55),
    (0x2E80, 0x303E), // CJK radicals, symbols and punctuation
    (0x3041, 0x33FF), // kana, bopomofo, CJK compatibility
    (0x3400, 0x4DBF), // CJK extension A
    (0x4E00, 0x9FFF), // CJK unified ideographs
    (0xA000, 0xA4CF), // Yi
    (0xA960, 0xA97F),
    (0xAC00, 0xD7A3), // Hangul syllables
    (0xF900, 0xFAFF), // CJK compatibility ideographs
    (0xFE10, 0xFE19),
    (0xFE30, 0xFE6F),
    (0xFF00, 0xFF60), // fullwidth forms
    (0xFFE0, 0xFFE6),
    (0x16FE0, 0x16FE4),
    (0x17000, 0x18CFF), // Tangut
    (0x1B000, 0x1B2FF), // kana supplement, Nushu
    (0x1F004, 0x1F004),
    (0x1F0CF, 0x1F0CF),
    (0x1F18E, 0x1F18E),
    (0x1F191, 0x1F19A),
    (0x1F200, 0x1F202),
    (0x1F210, 0x1F23B),
    (0x1F240, 0x1F248),
    (0x1F250, 0x1F251),
    (0x1F260, 0x1F265),
    (0x1F300, 0x1F320), // weather, landscape
    (0x1F32D, 0x1F335),
    (0x1F337, 0x1F37C),
    (0x1F37E, 0x1F393),
    (0x1F3A0, 0x1F3CA),
    (0x1F3CF, 0x1F3D3),
    (0x1F3E0, 0x1F3F0),
    (0x1F3F4, 0x1F3F4),
    (0x1F3F8, 0x1F43E),
    (0x1F440, 0x1F440),
    (0x1F442, 0x1F4FC),
    (0x1F4FF, 0x1F53D),
    (0x1F54B, 0x1F54E),
    (0x1F550, 0x1F567),
    (0x1F57A, 0x1F57A),
    (0x1F595, 0x1F596),
    (0x1F5A4, 0x1F5A4),
    (0x1F5FB, 0x1F64F), // faces
    (0x1F680, 0x1F6C5), // transport
    (0x1F6CC, 0x1F6CC),
    (0x1F6D0, 0x1F6D2),
    (0x1F6D5, 0x1F6D7),
    (0x1F6DC, 0x1F6DF),
    (0x1F6EB, 0x1F6EC),
    (0x1F6F4, 0x1F6FC),
    (0x1F7E0, 0x1F7EB),
    (0x1F7F0, 0x1F7F0),
    (0x1F90C, 0x1F93A),
    (0x1F93C, 0x1F945),
    (0x1F947, 0x1F9FF), // supplemental symbols and pictographs
    (0x1FA70, 0x1FAFF),
    (0x20000, 0x2FFFD), // CJK extensions B and on
    (0x30000, 0x3FFFD),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_cjk_emoji_and_marks() {
        assert_eq!(str_width("hello"), 5);
        assert_eq!(str_width("héllo wörld"), 11);
        assert_eq!(str_width("日本語"), 6);
        assert_eq!(str_width("한국어"), 6);
        assert_eq!(str_width("ｆｕｌｌ"), 8);
        assert_eq!(width('🎉'), 2);
        assert_eq!(width('😀'), 2);
        assert_eq!(width('👍'), 2);
        assert_eq!(width('\u{301}'), 0, "combining acute");
        assert_eq!(str_width("e\u{301}"), 1);
        assert_eq!(width('\u{200d}'), 0, "zero width joiner");
        assert_eq!(width('\u{fe0f}'), 0, "emoji presentation selector");
        assert_eq!(width('→'), 1);
        assert_eq!(width('€'), 1);
    }

    #[test]
    fn tables_are_sorted_and_disjoint() {
        for table in [ZERO, WIDE] {
            for w in table.windows(2) {
                assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:x?}");
            }
        }
    }
}
