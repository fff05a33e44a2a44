//! make deb and make install's guard (issue 13), no PostgreSQL needed:
//! the package is built from the binary under test with scripts/mkdeb.sh
//! into a private temp dir and read back with dpkg-deb; its systemd units
//! are checked with systemd-analyze verify when it is installed; the guard
//! is run against files that dpkg says installed packages own, without
//! writing to them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PKG: &str = "repmgr-rs";
const BINDIR: &str = "usr/lib/postgresql/15/bin";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rt-pkg-")
        .tempdir_in("/tmp")
        .expect("creating a temp dir under /tmp")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs `cmd`, panicking (with its output) when it cannot be started.
fn run(cmd: &mut Command) -> Output {
    cmd.env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn success(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Cargo.toml's package version.
fn cargo_version() -> String {
    let toml = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut in_package = false;
    for line in toml.lines() {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && line.starts_with("version") {
            return line.split('"').nth(1).unwrap().to_string();
        }
    }
    panic!("no version in Cargo.toml's [package]");
}

/// The package built from the binary under test, in a temp dir (removed
/// when dropped). None when dpkg-deb is missing (not a Debian system).
fn build_package() -> Option<(tempfile::TempDir, PathBuf)> {
    if !have("dpkg-deb") {
        eprintln!("note: dpkg-deb not found: make deb is not tested");
        return None;
    }
    let dir = tempdir();
    let out = dir.path().join("out");
    let stdout = success(
        Command::new("bash")
            .arg(root().join("scripts/mkdeb.sh"))
            .arg(env!("CARGO_BIN_EXE_repmgr"))
            .arg(&out)
            .env("TMPDIR", dir.path()),
    );
    let deb = PathBuf::from(stdout.lines().last().expect("mkdeb.sh prints the .deb"));
    assert!(deb.is_file(), "{} was not written", deb.display());
    // mkdeb.sh cleans up after itself: only the package is left.
    let mut left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["out"], "mkdeb.sh left files behind");
    Some((dir, deb))
}

/// `dpkg-deb -c`: path (without the leading "./") → (mode string, link target).
fn contents(deb: &Path) -> BTreeMap<String, (String, Option<String>)> {
    let listing = success(Command::new("dpkg-deb").arg("-c").arg(deb));
    listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let mode = f[0].to_string();
            assert_eq!(f[1], "root/root", "owner of {l}");
            let path = f[5].trim_start_matches("./").to_string();
            let target = (f.len() == 8 && f[6] == "->").then(|| f[7].to_string());
            (path, (mode, target))
        })
        .collect()
}

fn field(deb: &Path, name: &str) -> String {
    success(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))
        .trim()
        .to_string()
}

#[test]
fn make_deb_packages_binary_man_pages_units_and_examples() {
    let Some((_dir, deb)) = build_package() else {
        return;
    };
    let version = format!("{}-1", cargo_version());
    let arch = success(Command::new("dpkg").arg("--print-architecture"));
    let arch = arch.trim();
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("{PKG}_{version}_{arch}.deb")
    );

    let files = contents(&deb);
    let file = |p: &str, mode: &str| {
        let (m, target) = files
            .get(p)
            .unwrap_or_else(|| panic!("{p} is not in the package: {files:#?}"));
        assert_eq!((m.as_str(), target), (mode, &None), "{p}");
    };
    file(&format!("{BINDIR}/repmgr"), "-rwxr-xr-x");
    assert_eq!(
        files[&format!("{BINDIR}/repmgrd")],
        ("lrwxrwxrwx".to_string(), Some("repmgr".to_string())),
        "repmgrd is a symlink to repmgr"
    );
    for page in [
        "usr/share/man/man1/repmgr.1.gz",
        "usr/share/man/man5/repmgr.conf.5.gz",
        "usr/share/man/man8/repmgrd.8.gz",
        "lib/systemd/system/repmgrd.service",
        "lib/systemd/system/repmgrd@.service",
        "usr/share/doc/repmgr-rs/copyright",
        "usr/share/doc/repmgr-rs/changelog.Debian.gz",
        "usr/share/doc/repmgr-rs/examples/repmgr.conf",
    ] {
        file(page, "-rw-r--r--");
    }
    // Every file of examples/, if there is such a directory.
    let examples = root().join("examples");
    if examples.is_dir() {
        for e in fs::read_dir(&examples).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                let name = e.file_name().into_string().unwrap();
                file(
                    &format!("usr/share/doc/repmgr-rs/examples/{name}"),
                    "-rw-r--r--",
                );
            }
        }
    }
    // Nothing in /etc: the configuration is the DBA's to write.
    assert!(
        !files.keys().any(|p| p.starts_with("etc")),
        "the package installs files in /etc: {files:#?}"
    );

    assert_eq!(field(&deb, "Package"), PKG);
    assert_eq!(field(&deb, "Version"), version);
    assert_eq!(field(&deb, "Architecture"), arch);
    assert_eq!(field(&deb, "Section"), "database");
    assert_eq!(field(&deb, "Priority"), "optional");
    assert_eq!(field(&deb, "Conflicts"), "postgresql-15-repmgr");
    assert_eq!(field(&deb, "Replaces"), "postgresql-15-repmgr");
    assert_eq!(field(&deb, "Provides"), "", "no Provides: no C extension");
    let depends = field(&deb, "Depends");
    for dep in ["libc6", "libssl3", "postgresql-15"] {
        assert!(
            depends
                .split(", ")
                .any(|d| d.split(' ').next() == Some(dep)),
            "Depends ({depends}) lacks {dep}"
        );
    }
    assert!(!field(&deb, "Maintainer").is_empty());
    assert!(field(&deb, "Installed-Size").parse::<u64>().unwrap() > 0);
    assert!(field(&deb, "Description").starts_with("replication manager for PostgreSQL"));

    // The packaged binary is the one under test, and runs.
    let dir = tempdir();
    success(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir.path()));
    let out = success(Command::new(dir.path().join(BINDIR).join("repmgr")).arg("--version"));
    assert_eq!(out.trim(), format!("repmgr {}", cargo_version()));
    let copyright =
        fs::read_to_string(dir.path().join("usr/share/doc/repmgr-rs/copyright")).unwrap();
    assert!(copyright.contains("License: GPL-3+"), "{copyright}");
}

/// The units as packaged pass `systemd-analyze verify`. Verify needs the
/// ExecStart binary to exist, so the copies verified differ from the
/// packaged units only in the directory of ExecStart: the package's own
/// binary, extracted into the temp dir. The man pages of Documentation=
/// are the package's too (MANPATH), when man is installed.
#[test]
fn the_packaged_systemd_units_pass_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        eprintln!("note: systemd-analyze not found: the systemd units are not verified");
        return;
    }
    let Some((dir, deb)) = build_package() else {
        return;
    };
    let x = dir.path().join("x");
    success(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x));
    let units = dir.path().join("units");
    fs::create_dir(&units).unwrap();
    let packaged = format!("/{BINDIR}/repmgrd");
    let extracted = x.join(BINDIR).join("repmgrd");
    for unit in ["repmgrd.service", "repmgrd@.service"] {
        let text = fs::read_to_string(x.join("lib/systemd/system").join(unit)).unwrap();
        assert!(
            text.contains(&format!("ExecStart={packaged} ")),
            "{unit} starts {packaged}"
        );
        let copy = text.replace(&packaged, extracted.to_str().unwrap());
        fs::write(units.join(unit), copy).unwrap();
    }
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify");
    if have("man") {
        cmd.env("MANPATH", x.join("usr/share/man"));
    } else {
        eprintln!("note: man not found: Documentation= is not checked");
        cmd.arg("--man=no");
    }
    // The template is verified through an instance.
    cmd.arg(units.join("repmgrd.service"))
        .arg(units.join("repmgrd@15-main.service"))
        .current_dir(&units);
    let o = run(&mut cmd);
    let stderr = text(&o.stderr);
    // verify only warns (exit 0) about a value it cannot parse: any line
    // about our units fails the test.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("repmgrd")).collect();
    assert!(
        o.status.success() && ours.is_empty(),
        "systemd-analyze verify ({}):\n{stderr}",
        o.status
    );
}

#[test]
fn the_template_reads_the_clusters_config_under_etc_postgresql() {
    let unit = fs::read_to_string(root().join("systemd/repmgrd@.service")).unwrap();
    assert!(unit.contains("-f /etc/postgresql/%I/repmgr.conf"));
    assert!(unit.contains("After=network-online.target postgresql@%i.service"));
    // repmgrd must outlive its local server.
    for binding in ["BindsTo=", "PartOf=", "Requires="] {
        assert!(
            !unit.lines().any(|l| l.starts_with(binding)),
            "{binding} in repmgrd@.service"
        );
    }
    if have("systemd-escape") {
        let out = success(Command::new("systemd-escape").args(["--unescape", "15-main"]));
        assert_eq!(out.trim(), "15/main", "%I of repmgrd@15-main");
    }
}

fn guard(paths: &[&Path]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/install-guard.sh"))
        .args(paths)
        .env_remove("DESTDIR")
        .env_remove("FORCE");
    cmd
}

/// A file dpkg says an installed package (not ours) owns: /usr/bin/dpkg.
fn package_owned_file() -> Option<(PathBuf, String)> {
    if !have("dpkg-query") {
        eprintln!("note: dpkg-query not found: the install guard is not tested");
        return None;
    }
    let path = PathBuf::from("/usr/bin/dpkg");
    let o = run(Command::new("dpkg-query").arg("-S").arg(&path));
    let out = text(&o.stdout);
    let owner = out
        .lines()
        .find_map(|l| l.strip_suffix(": /usr/bin/dpkg"))
        .expect("dpkg-query -S /usr/bin/dpkg names its package");
    Some((path, owner.to_string()))
}

#[test]
fn install_guard_refuses_a_package_owned_file_unless_forced_or_staged() {
    let Some((owned, owner)) = package_owned_file() else {
        return;
    };
    let dir = tempdir();
    let mine = dir.path().join("repmgr");
    fs::write(&mine, "not a package's").unwrap();
    let missing = dir.path().join("repmgrd");

    // Refused, naming the file and its package.
    let o = run(&mut guard(&[&mine, &owned, &missing]));
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("ERROR: make install would overwrite a file of an installed package\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("DETAIL: {} (package {owner})\n", owned.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "HINT: remove the package first (\"apt remove {owner}\")"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("make deb"), "{stderr}");
    assert!(stderr.contains("make install FORCE=1"), "{stderr}");
    assert!(!stderr.contains(mine.to_str().unwrap()), "{stderr}");

    // Files of no package (or none at all) pass.
    let o = run(&mut guard(&[&mine, &missing]));
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}",
        text(&o.stderr)
    );

    // FORCE=1 passes with a warning.
    let o = run(guard(&[&owned]).env("FORCE", "1"));
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "WARNING: overwriting {} (package {owner}) (FORCE=1)\n",
            owned.display()
        )
    );

    // Staged (DESTDIR): nothing is checked.
    let o = run(guard(&[&owned]).env("DESTDIR", dir.path()));
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}",
        text(&o.stderr)
    );
}

/// `make install` through the Makefile, without building (make -o build)
/// and with the binary under test: staged under DESTDIR it installs; over
/// Debian's postgresql-15-repmgr (when installed) it is refused before
/// anything is copied. The refused run names a binary that does not exist,
/// so even a guard that let it through could not overwrite anything.
#[test]
fn make_install_stages_under_destdir_and_refuses_over_a_package() {
    if !have("make") {
        eprintln!("note: make not found: make install is not tested");
        return;
    }
    let make = || {
        let mut cmd = Command::new("make");
        cmd.arg("-C")
            .arg(root())
            .args(["-s", "-o", "build", "install"])
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKEOVERRIDES")
            .env_remove("MAKELEVEL")
            .env_remove("DESTDIR")
            .env_remove("FORCE");
        cmd
    };

    let dir = tempdir();
    let stage = dir.path().join("stage");
    success(
        make()
            .arg(format!("DESTDIR={}", stage.display()))
            .arg("PGDIR=/usr/lib/postgresql/15")
            .arg("MANDIR=/usr/share/man")
            .arg(format!("REPMGR_BIN={}", env!("CARGO_BIN_EXE_repmgr")))
            .arg("FORCE="),
    );
    let bin = stage.join(BINDIR);
    assert!(bin.join("repmgr").is_file());
    assert_eq!(
        fs::read_link(bin.join("repmgrd")).unwrap(),
        Path::new("repmgr")
    );
    for page in ["man1/repmgr.1", "man5/repmgr.conf.5", "man8/repmgrd.8"] {
        assert!(stage.join("usr/share/man").join(page).is_file(), "{page}");
    }

    let debian = Path::new("/usr/lib/postgresql/15/bin/repmgr");
    // Its owner, unless none or ours (then make install may overwrite it).
    let owner = have("dpkg-query")
        .then(|| text(&run(Command::new("dpkg-query").arg("-S").arg(debian)).stdout))
        .and_then(|out| {
            out.lines()
                .find_map(|l| l.strip_suffix(&format!(": {}", debian.display())))
                .map(str::to_string)
        })
        .filter(|o| o != PKG);
    let Some(owner) = owner else {
        eprintln!(
            "note: {} belongs to no other package: the refusal is tested through the guard only",
            debian.display()
        );
        return;
    };
    let before = fs::read(debian).unwrap();
    let o = run(make()
        .arg("DESTDIR=")
        .arg("FORCE=")
        .arg("PGDIR=/usr/lib/postgresql/15")
        .arg(format!(
            "REPMGR_BIN={}",
            dir.path().join("no-such-binary").display()
        )));
    let stderr = text(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("ERROR: make install would overwrite"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("DETAIL: {} (package {owner})", debian.display())),
        "{stderr}"
    );
    assert_eq!(
        fs::read(debian).unwrap(),
        before,
        "{} changed",
        debian.display()
    );
}
