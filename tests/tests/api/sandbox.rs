//! `wxlink serve --sandbox` prints a walkthrough; run its shell lines as printed.

use std::time::{Duration, Instant};

use crate::helpers::{PROCESS_LIMIT, Proc, clean_command, free_port, wxlink_command};

#[test]
fn sandbox_walkthrough_works_as_printed() {
    let curl = clean_command("curl").arg("--version").output();
    assert!(
        curl.is_ok_and(|o| o.status.success()),
        "curl is not installed: this test runs the sandbox's printed curl lines (apt-get install curl)"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port().expect("a free port");
    let mut cmd = wxlink_command();
    cmd.args(["serve", "--sandbox"])
        .current_dir(dir.path())
        .env("WXLINK__SERVER__BIND", format!("127.0.0.1:{port}"));
    let mut sandbox = Proc::spawn(cmd, "wxlink sandbox");

    // The walkthrough is printed once, at start; read it up to the end of section 5.
    let deadline = Instant::now() + PROCESS_LIMIT;
    let mut printed = Vec::new();
    let mut in_last_section = false;
    loop {
        let Some(line) = sandbox.next_stdout_line(deadline) else {
            sandbox.kill();
            panic!(
                "the sandbox did not print its walkthrough within {PROCESS_LIMIT:?}; \
                 stdout:\n{}\nstderr:\n{}",
                printed.join("\n"),
                sandbox.stderr()
            );
        };
        let blank = line.trim().is_empty();
        in_last_section |= line.starts_with("# 5.");
        printed.push(line);
        if in_last_section && blank {
            break;
        }
    }
    assert_eq!(
        printed[0],
        format!("wxlink sandbox listening on http://127.0.0.1:{port}"),
        "the first line names the address"
    );
    let start = printed
        .iter()
        .position(|l| l.starts_with("Try it"))
        .expect("a `Try it` line");
    let script: Vec<&str> = printed[start + 1..]
        .iter()
        .map(String::as_str)
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    let script = script.join("\n");

    let mut bash = clean_command("bash");
    bash.arg("-c").arg(&script).current_dir(dir.path());
    let mut run = Proc::spawn(bash, "walkthrough");
    let status = run.wait_exit(Duration::from_secs(30));
    let output = run.stdout();
    sandbox.kill();
    let context = format!(
        "script:\n{script}\n\noutput:\n{output}\nstderr:\n{}\nsandbox stderr:\n{}",
        run.stderr(),
        sandbox.stderr()
    );
    assert!(
        status.success(),
        "the walkthrough failed ({status})\n{context}"
    );
    for expected in [
        r#""needs_user_info":true"#,
        r#""merged":true"#,
        r#""openid":"alice-in-a""#,
        r#""openid":"alice-in-b""#,
    ] {
        assert!(output.contains(expected), "missing {expected}\n{context}");
    }
    let me = output
        .lines()
        .find(|l| l.contains(r#""identities""#))
        .unwrap_or_else(|| panic!("no /v1/me answer\n{context}"));
    assert!(
        me.contains("alice-in-a") && me.contains("alice-in-b"),
        "/v1/me lists both identities: {me}"
    );
    assert!(
        output.lines().any(|l| l.trim() == "204"),
        "logout answers 204\n{context}"
    );
}
