//! repmgrd and repmgr are one executable: most of its code is the CLI's,
//! and starting up (reading the configuration, daemonizing, the first
//! cycles) runs code the monitoring loop never runs again. The kernel maps
//! the pages of a file mapping in batches around each page touched, so
//! after start-up most of the executable and of its libraries' code stays
//! in repmgrd's resident set, unused. Once monitoring has settled, repmgrd
//! unmaps the code pages of every file it maps (they stay in the page
//! cache; the loop's own pages come back at their first use, from memory).
//! Only pages that are never written are dropped: read-and-execute private
//! file mappings, whose pages always equal the file's.

use std::ffi::c_void;
use std::ptr::NonNull;

/// Cycles after which the code pages are released: start-up and the
/// first rounds with every peer are done by then.
pub const AFTER_CYCLES: u64 = 20;

/// Counts a monitoring cycle; releases the code pages at AFTER_CYCLES.
pub fn after_cycle(cycles: &mut u64) {
    *cycles += 1;
    if *cycles == AFTER_CYCLES {
        release_code_pages();
    }
}

/// The read-and-execute file mappings in `maps` (/proc/self/maps) as
/// (start, length).
fn code_mappings(maps: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?;
            if perms != "r-xp" || !path.starts_with('/') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (end > start).then_some((start, end - start))
        })
        .collect()
}

fn release_code_pages() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for (start, len) in code_mappings(&maps) {
        let Some(addr) = NonNull::new(start as *mut c_void) else {
            continue;
        };
        // SAFETY: a private, read-and-execute file mapping is never
        // written, so its pages equal the file's: MADV_DONTNEED only
        // unmaps them and the next access maps them again from the page
        // cache. No memory the program wrote is touched.
        let _ = unsafe {
            nix::sys::mman::madvise(addr, len, nix::sys::mman::MmapAdvise::MADV_DONTNEED)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_executable_file_mappings_are_taken() {
        let maps = "\
55d0c0000000-55d0c0100000 r--p 00000000 08:01 123 /usr/bin/repmgr
55d0c0100000-55d0c0300000 r-xp 00100000 08:01 123 /usr/bin/repmgr
55d0c0300000-55d0c0310000 rw-p 00300000 08:01 123 /usr/bin/repmgr
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
7f0000100000-7f0000200000 r-xp 00028000 08:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
";
        assert_eq!(
            code_mappings(maps),
            vec![(0x55d0c0100000, 0x200000), (0x7f0000100000, 0x100000)]
        );
    }

    #[test]
    fn releasing_keeps_the_program_running() {
        release_code_pages();
        assert_eq!(code_mappings("").len(), 0);
    }
}
