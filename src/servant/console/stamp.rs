//! `HH:MM`, the local time, before each transcript line: irssi's and weechat's
//! time stamps. Local time is what the zone file says: `TZ` (`:PATH`, a path, or
//! a name under `/usr/share/zoneinfo`), else `/etc/localtime`, read once.
//!
//! Read here, not with the C library's `localtime_r`: in the static build that
//! would pull glibc's time-zone code, its stdio and its `ctype` tables in, which
//! the static servant leaves out (`src/static_libc`). The zone file's transitions
//! are used as they are; past the file's last one, its last offset holds (a file
//! built "slim" keeps later daylight-saving changes only in a rule string, which
//! is not read: such a zone may be an hour off in summer).

use std::sync::OnceLock;

/// The zone's transitions: from each time on (seconds since the epoch), this
/// offset from UTC (seconds); sorted. Empty for UTC.
static ZONE: OnceLock<Vec<(i64, i32)>> = OnceLock::new();

/// The local time now as `HH:MM`.
pub fn now() -> [u8; 5] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    hh_mm(t + i64::from(offset(ZONE.get_or_init(load), t)))
}

fn hh_mm(local: i64) -> [u8; 5] {
    let day = local.rem_euclid(86_400);
    let (h, m) = (day / 3600, day / 60 % 60);
    let digit = |n: i64| b'0' + (n % 10) as u8;
    [digit(h / 10), digit(h), b':', digit(m / 10), digit(m)]
}

/// The offset in force at `t`.
fn offset(zone: &[(i64, i32)], t: i64) -> i32 {
    let k = zone.partition_point(|&(at, _)| at <= t);
    zone.get(k.saturating_sub(1)).map_or(0, |&(_, off)| off)
}

/// The zone file `TZ` names, else `/etc/localtime`; UTC when there is none.
fn load() -> Vec<(i64, i32)> {
    let path = match std::env::var("TZ") {
        Ok(tz) if tz.is_empty() || tz == "UTC" || tz == ":UTC" => return Vec::new(),
        Ok(tz) => {
            let tz = tz.strip_prefix(':').unwrap_or(&tz).to_string();
            if tz.starts_with('/') {
                tz
            } else {
                format!("/usr/share/zoneinfo/{tz}")
            }
        }
        Err(_) => "/etc/localtime".into(),
    };
    std::fs::read(path)
        .ok()
        .and_then(|f| parse(&f))
        .unwrap_or_default()
}

/// A TZif file's transitions and offsets: the 64-bit data of version 2 and later,
/// else the 32-bit data of version 1.
fn parse(f: &[u8]) -> Option<Vec<(i64, i32)>> {
    let (v1, body) = block(f, 4)?;
    let data = if f.get(4).is_some_and(|&v| v >= b'2') {
        block(f.get(44 + v1..)?, 8)?.1
    } else {
        body
    };
    Some(data)
}

/// One TZif header and data block with `size`-byte times: the block's length
/// past its header, and its transitions (a first entry for the time before any).
fn block(f: &[u8], size: usize) -> Option<(usize, Vec<(i64, i32)>)> {
    if f.get(..4)? != b"TZif" {
        return None;
    }
    let count = |k: usize| -> Option<usize> {
        let b = f.get(20 + 4 * k..24 + 4 * k)?;
        Some(u32::from_be_bytes(b.try_into().ok()?) as usize)
    };
    let (isut, isstd, leap, times, types, chars) = (
        count(0)?,
        count(1)?,
        count(2)?,
        count(3)?,
        count(4)?,
        count(5)?,
    );
    let len = times * size + times + types * 6 + chars + leap * (size + 4) + isstd + isut;
    let d = f.get(44..44 + len)?;
    let utoff = |ty: usize| -> Option<i32> {
        let at = times * size + times + ty * 6;
        Some(i32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
    };
    let mut zone = vec![(i64::MIN, utoff(0)?)];
    for k in 0..times {
        let b = d.get(k * size..(k + 1) * size)?;
        let at = if size == 8 {
            i64::from_be_bytes(b.try_into().ok()?)
        } else {
            i64::from(i32::from_be_bytes(b.try_into().ok()?))
        };
        let ty = usize::from(*d.get(times * size + k)?);
        zone.push((at, utoff(ty)?));
    }
    Some((len, zone))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_and_minutes() {
        assert_eq!(&hh_mm(0), b"00:00");
        assert_eq!(&hh_mm(13 * 3600 + 7 * 60 + 59), b"13:07");
        assert_eq!(&hh_mm(-60), b"23:59");
        let s = now();
        let s = std::str::from_utf8(&s).unwrap();
        let (h, m) = s.split_once(':').unwrap();
        assert!(
            h.parse::<u8>().unwrap() < 24 && m.parse::<u8>().unwrap() < 60,
            "{s}"
        );
    }

    #[test]
    fn a_zone_file_gives_the_offset_in_force() {
        // A version 1 file: one transition at t=1000 from +1h to +2h.
        let mut f = b"TZif\0".to_vec();
        f.extend_from_slice(&[0; 15]);
        for n in [0u32, 0, 0, 1, 2, 4] {
            f.extend_from_slice(&n.to_be_bytes());
        }
        f.extend_from_slice(&1000i32.to_be_bytes());
        f.push(1);
        f.extend_from_slice(&3600i32.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&7200i32.to_be_bytes());
        f.extend_from_slice(&[1, 0]);
        f.extend_from_slice(b"A\0B\0");
        let zone = parse(&f).unwrap();
        assert_eq!(offset(&zone, 999), 3600);
        assert_eq!(offset(&zone, 1000), 7200);
        assert_eq!(offset(&[], 5), 0, "UTC");
        if let Ok(f) = std::fs::read("/usr/share/zoneinfo/Europe/Paris") {
            let zone = parse(&f).unwrap();
            assert_eq!(offset(&zone, 1_700_000_000), 3600, "November 2023");
            assert_eq!(offset(&zone, 1_690_000_000), 7200, "July 2023");
        }
    }
}
