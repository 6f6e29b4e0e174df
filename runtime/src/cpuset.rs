//! Parsing of CPU lists in cpuset(7) "list format": `0-3,8,10-15:2`.

use std::collections::BTreeSet;

/// Why a CPU list did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuListError {
    /// Nothing but separators.
    #[error("the CPU list is empty")]
    Empty,
    /// A part that is not a number, a range or a strided range.
    #[error("{part:?} in CPU list {list:?} is not N, N-M or N-M:STRIDE")]
    BadPart {
        /// The whole list.
        list: String,
        /// The offending part.
        part: String,
    },
    /// A range that runs backwards.
    #[error("range {part:?} in CPU list {list:?} runs backwards")]
    Backwards {
        /// The whole list.
        list: String,
        /// The offending part.
        part: String,
    },
}

/// Parses a cpuset(7) list into sorted, de-duplicated CPU numbers.
///
/// ```
/// use quire_runtime::cpuset::parse_cpu_list;
/// assert_eq!(parse_cpu_list("0-3,8").unwrap(), vec![0, 1, 2, 3, 8]);
/// assert_eq!(parse_cpu_list("0-6:2").unwrap(), vec![0, 2, 4, 6]);
/// assert!(parse_cpu_list("3-1").is_err());
/// ```
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, CpuListError> {
    let bad = |part: &str| CpuListError::BadPart {
        list: list.to_owned(),
        part: part.to_owned(),
    };
    let mut cpus = BTreeSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (range, stride) = match part.split_once(':') {
            Some((r, s)) => (
                r,
                s.parse::<usize>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad(part))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().map_err(|_| bad(part))?,
                b.trim().parse::<usize>().map_err(|_| bad(part))?,
            ),
            None => {
                let n = range.parse::<usize>().map_err(|_| bad(part))?;
                (n, n)
            }
        };
        if hi < lo {
            return Err(CpuListError::Backwards {
                list: list.to_owned(),
                part: part.to_owned(),
            });
        }
        cpus.extend((lo..=hi).step_by(stride));
    }
    if cpus.is_empty() {
        return Err(CpuListError::Empty);
    }
    Ok(cpus.into_iter().collect())
}

/// Formats CPU numbers back into the shortest list form.
///
/// ```
/// use quire_runtime::cpuset::format_cpu_list;
/// assert_eq!(format_cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
/// ```
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        parts.push(if sorted[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", sorted[i])
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_list_format() {
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list(" 4 , 0-1 ,1").unwrap(), vec![0, 1, 4]);
        assert_eq!(parse_cpu_list("1-9:4").unwrap(), vec![1, 5, 9]);
    }

    #[test]
    fn refuses_garbage_with_the_part_named() {
        assert_eq!(parse_cpu_list(""), Err(CpuListError::Empty));
        assert_eq!(parse_cpu_list(" , "), Err(CpuListError::Empty));
        for bad in ["a", "1-", "-1", "1-2:0", "1-2:x", "1--2", "0x3"] {
            let err = parse_cpu_list(bad).unwrap_err();
            assert!(
                matches!(err, CpuListError::BadPart { .. }),
                "{bad}: {err:?}"
            );
            assert!(err.to_string().contains(bad));
        }
        assert!(matches!(
            parse_cpu_list("5-2"),
            Err(CpuListError::Backwards { .. })
        ));
    }

    #[test]
    fn format_round_trips() {
        for list in ["0", "0-3", "0,2,4", "1-2,7,9-12"] {
            assert_eq!(format_cpu_list(&parse_cpu_list(list).unwrap()), list);
        }
    }
}
