//! Connection service files (`service=`, `PGSERVICE`), as libpq reads them:
//! the user's file (`PGSERVICEFILE`, else `~/.pg_service.conf`) first, then
//! the system's (`$PGSYSCONFDIR/pg_service.conf`, Debian's libpq default
//! directory `/etc/postgresql-common`). A service's settings fill what the
//! connection string leaves unset, before the environment does.

use std::path::{Path, PathBuf};

use super::{is_libpq_keyword, ConnInfo};
use crate::error::{Error, Result};

/// The resolver's environment lookup (spelled here so that this file does
/// not import the resolver).
type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Where libpq on Debian looks for the system-wide service file.
const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";

/// `ci` with the settings of its service added (none: `ci` unchanged).
pub fn apply_service(ci: &ConnInfo, env: EnvLookup) -> Result<ConnInfo> {
    let named = ci
        .get("service")
        .map(str::to_string)
        .filter(|s| !s.is_empty());
    let Some(name) = named.or_else(|| env("PGSERVICE").filter(|s| !s.is_empty())) else {
        return Ok(ci.clone());
    };
    let user_file = env("PGSERVICEFILE")
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| Path::new(&h).join(".pg_service.conf"))
        });
    let sysconf = env("PGSYSCONFDIR").filter(|d| !d.is_empty());
    let system_file =
        Path::new(sysconf.as_deref().unwrap_or(DEFAULT_SYSCONFDIR)).join("pg_service.conf");
    for file in user_file.iter().chain(std::iter::once(&system_file)) {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        if let Some(settings) = find_service(&text, &name, file)? {
            let mut out = ci.clone();
            for (k, v) in settings {
                out.set_if_absent(&k, &v);
            }
            return Ok(out);
        }
    }
    Err(Error::db_conn(format!(
        "definition of service \"{name}\" not found"
    )))
}

/// The `key=value` lines of section `[name]`, or None when it is absent.
fn find_service(text: &str, name: &str, file: &Path) -> Result<Option<Vec<(String, String)>>> {
    let mut inside = false;
    let mut found = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if inside {
                break;
            }
            inside = section == name;
            if inside {
                found = Some(Vec::new());
            }
            continue;
        }
        if !inside {
            continue;
        }
        let syntax = || {
            Error::db_conn(format!(
                "syntax error in service file \"{}\", line {}",
                file.display(),
                n + 1
            ))
        };
        let (k, v) = line.split_once('=').ok_or_else(syntax)?;
        let (k, v) = (k.trim(), v.trim());
        if k == "service" {
            return Err(Error::db_conn(format!(
                "nested service specifications not supported in service file \"{}\", line {}",
                file.display(),
                n + 1
            )));
        }
        if !is_libpq_keyword(k) {
            return Err(syntax());
        }
        if let Some(list) = found.as_mut() {
            list.push((k.to_string(), v.to_string()));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conninfo::tests::{env_of, parse};

    #[test]
    fn services_fill_what_the_string_leaves_unset() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.conf");
        std::fs::write(
            &user,
            "# mine\n[db1]\nhost=h1\nport = 6000\nsslmode=verify-full\n\n[other]\nhost=x\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sys")).unwrap();
        std::fs::write(
            dir.path().join("sys/pg_service.conf"),
            "[sysonly]\nhost=s\n",
        )
        .unwrap();
        let sys = dir.path().join("sys");
        let vars = [
            ("PGSERVICEFILE", user.to_str().unwrap()),
            ("PGSYSCONFDIR", sys.to_str().unwrap()),
        ];
        let env = env_of(&vars);
        let ci = apply_service(&parse("service=db1 port=1"), &env).unwrap();
        assert_eq!(ci.get("host"), Some("h1"));
        assert_eq!(ci.get("port"), Some("1"));
        assert_eq!(ci.get("sslmode"), Some("verify-full"));
        let ci = apply_service(&parse("service=sysonly"), &env).unwrap();
        assert_eq!(ci.get("host"), Some("s"));
        let mut with_env = vars.to_vec();
        with_env.push(("PGSERVICE", "other"));
        let ci = apply_service(&parse(""), &env_of(&with_env)).unwrap();
        assert_eq!(ci.get("host"), Some("x"));
        let e = apply_service(&parse("service=nope"), &env).unwrap_err();
        assert_eq!(e.message(), "definition of service \"nope\" not found");
        std::fs::write(&user, "[bad]\nhost\n").unwrap();
        let e = apply_service(&parse("service=bad"), &env).unwrap_err();
        assert!(e.message().contains("syntax error in service file"), "{e}");
        assert_eq!(
            apply_service(&parse("host=a"), &env).unwrap(),
            parse("host=a")
        );
    }
}
