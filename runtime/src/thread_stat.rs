//! One reader of `/proc/self/task/TID/stat` for the watchdog and the CPU
//! profile: a thread's state letter, its CPU time and its page faults.

/// What the kernel says of one thread of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThreadStat {
    /// `R` running or runnable, `S` sleeping, `D` in uninterruptible I/O, ...
    pub state: char,
    /// User + system CPU time, in clock ticks (`_SC_CLK_TCK`).
    pub cpu_ticks: u64,
    /// Minor + major page faults so far.
    pub faults: u64,
}

impl ThreadStat {
    /// The thread `tid` of this process now (`None`: gone, or no procfs).
    pub fn read(tid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        Self::parse(&stat)
    }

    /// Parses a stat line: "tid (comm) S ppid ...". The command name may
    /// hold spaces and parentheses, so fields are counted from the last
    /// ')': field 3 (state) is the first, minflt field 10, majflt 12,
    /// utime 14, stime 15.
    fn parse(stat: &str) -> Option<Self> {
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
        Some(Self {
            state: fields.first()?.chars().next()?,
            faults: number(7)? + number(9)?,
            cpu_ticks: number(11)? + number(12)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_an_odd_name_parses() {
        let line = "42 (quire) shard 0) R 1 42 42 0 -1 4194560 120 0 3 0 250 50 0 0 20 0 9 0 1";
        let s = ThreadStat::parse(line).unwrap();
        assert_eq!((s.state, s.faults, s.cpu_ticks), ('R', 123, 300));
    }

    #[test]
    fn this_thread_is_running() {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        assert_eq!(ThreadStat::read(tid).unwrap().state, 'R');
    }
}
