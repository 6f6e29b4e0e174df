//! The Python client's own tests (`clients/python/tests`), run against
//! real `quire node` processes of this build: the README's test command
//! runs them through this file. They need `python3` with `msgpack`
//! (scripts/setup-host.sh installs it).

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_client_passes_its_tests_against_a_real_node() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/python");
    let probe = Command::new("python3")
        .args(["-c", "import msgpack"])
        .output()
        .expect("python3 is not on PATH (scripts/setup-host.sh checks it)");
    assert!(
        probe.status.success(),
        "python3 has no msgpack module: run scripts/setup-host.sh (pip install 'msgpack>=1.0'): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let run = Command::new("python3")
        .args(["-m", "unittest", "discover", "-v", "-s", "tests"])
        .current_dir(&python)
        .env("QUIRE_BIN", env!("CARGO_BIN_EXE_quire"))
        .env("PYTHONPATH", &python)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&run.stderr);
    // unittest's summary: "Ran N tests" and "OK" (or "FAILED (...)").
    eprintln!("{report}");
    assert!(run.status.success(), "the Python client's tests failed");
    let ran = report
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split(' ')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .unwrap_or(0);
    assert!(ran >= 20, "only {ran} Python tests ran");
}
