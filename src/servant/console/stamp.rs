//! `HH:MM`, the local time, before each transcript line: irssi's and weechat's
//! time stamps. Local time is what the C library makes of `TZ` and
//! `/etc/localtime` (`localtime_r`), as `date` shows it.

/// The local time now as `HH:MM`; UTC if the C library cannot say.
pub fn now() -> [u8; 5] {
    // SAFETY: time(NULL) only returns the time; localtime_r fills the tm we own.
    let (h, m) = unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            let day = t.rem_euclid(86_400);
            ((day / 3600) as i32, (day / 60 % 60) as i32)
        } else {
            (tm.tm_hour, tm.tm_min)
        }
    };
    let digit = |n: i32| b'0' + (n.clamp(0, 99) % 10) as u8;
    [digit(h / 10), digit(h), b':', digit(m / 10), digit(m)]
}

#[cfg(test)]
mod tests {
    #[test]
    fn hours_and_minutes() {
        let s = super::now();
        let s = std::str::from_utf8(&s).unwrap();
        let (h, m) = s.split_once(':').unwrap();
        assert!(
            h.parse::<u8>().unwrap() < 24 && m.parse::<u8>().unwrap() < 60,
            "{s}"
        );
    }
}
