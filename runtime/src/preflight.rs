//! Checks made before any executor starts, so that a node that cannot run
//! says why in words an operator can act on, instead of failing deep inside
//! io_uring set-up.

/// Locked memory glommio needs per executor (its own minimum).
pub const MEMLOCK_PER_SHARD: u64 = 512 * 1024;

/// A host limit that stops the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    /// RLIMIT_MEMLOCK is below what the shards need.
    #[error(
        "the locked-memory limit is {have_kib} KiB but {shards} shard(s) need at least {need_kib} KiB for io_uring; \
         raise it with `ulimit -l {need_kib}` (or LimitMEMLOCK= in the systemd unit, `memlock` in /etc/security/limits.conf)"
    )]
    MemlockTooLow {
        /// Current soft limit.
        have_kib: u64,
        /// Required.
        need_kib: u64,
        /// Shards planned.
        shards: usize,
    },
    /// io_uring is switched off by sysctl.
    #[error("io_uring is disabled on this host (kernel.io_uring_disabled = {0}); set it to 0 with `sysctl -w kernel.io_uring_disabled=0`")]
    IoUringDisabled(u32),
    /// The kernel has no io_uring at all.
    #[error("this kernel has no usable io_uring ({0}); Quire needs Linux 5.8 or later with io_uring enabled")]
    NoIoUring(String),
}

/// The soft limit of `resource` (`libc::RLIMIT_*`); `u64::MAX` for
/// unlimited or unreadable.
pub fn soft_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other invariant.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return u64::MAX;
    }
    lim.rlim_cur
}

/// The soft RLIMIT_MEMLOCK in bytes (`u64::MAX` for unlimited).
pub fn memlock_limit() -> u64 {
    soft_limit(libc::RLIMIT_MEMLOCK)
}

/// Checks a memlock limit of `limit` bytes against `shards` executors.
///
/// ```
/// use quire_runtime::preflight::check_memlock;
/// assert!(check_memlock(8 << 20, 2).is_ok());
/// let err = check_memlock(64 * 1024, 2).unwrap_err();
/// assert!(err.to_string().contains("ulimit -l 1024"));
/// ```
pub fn check_memlock(limit: u64, shards: usize) -> Result<(), PreflightError> {
    let need = MEMLOCK_PER_SHARD * shards as u64;
    if limit < need {
        return Err(PreflightError::MemlockTooLow {
            have_kib: limit / 1024,
            need_kib: need / 1024,
            shards,
        });
    }
    Ok(())
}

/// Reads `kernel.io_uring_disabled` (absent on kernels before 6.6: enabled).
pub fn check_io_uring_sysctl(value: Option<&str>) -> Result<(), PreflightError> {
    // 1 allows io_uring only to root (and to members of io_uring_group).
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    match value.and_then(|v| v.trim().parse::<u32>().ok()) {
        Some(v) if v >= 2 || (v == 1 && !root) => Err(PreflightError::IoUringDisabled(v)),
        _ => Ok(()),
    }
}

/// Probes io_uring with a tiny ring, which also proves the syscall exists
/// and is not blocked by a seccomp profile.
pub fn probe_io_uring() -> Result<(), PreflightError> {
    let mut params = [0u8; 120]; // struct io_uring_params, zeroed
                                 // SAFETY: io_uring_setup reads/writes only the params buffer we pass,
                                 // which is larger than the kernel's struct; the fd is closed at once.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(PreflightError::NoIoUring(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    // SAFETY: fd is a descriptor we own.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// Every check, for `shards` shards on this host.
pub fn check_host(shards: usize) -> Result<(), PreflightError> {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok();
    check_io_uring_sysctl(sysctl.as_deref())?;
    probe_io_uring()?;
    check_memlock(memlock_limit(), shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memlock_message_names_the_value_to_set() {
        let err = check_memlock(512 * 1024, 4).unwrap_err();
        assert_eq!(
            err,
            PreflightError::MemlockTooLow {
                have_kib: 512,
                need_kib: 2048,
                shards: 4
            }
        );
        assert!(err.to_string().contains("ulimit -l 2048"));
        assert!(check_memlock(u64::MAX, 1024).is_ok());
    }

    #[test]
    fn io_uring_sysctl_values() {
        assert!(check_io_uring_sysctl(None).is_ok());
        assert!(check_io_uring_sysctl(Some("0\n")).is_ok());
        let err = check_io_uring_sysctl(Some("2")).unwrap_err();
        assert!(err.to_string().contains("kernel.io_uring_disabled=0"));
    }

    #[test]
    fn this_host_has_io_uring() {
        probe_io_uring().unwrap();
    }
}
