//! The host preparation script (`render::prepare_tunnel_host`) run for real with `sh`, against stub commands that
//! emulate the documented behaviour of libreswan, iptables, modprobe and the package managers. No root, no network:
//! the script finds every command through PATH, and PATH holds only the stubs and the few basic utilities it uses.
//!
//! Stub behaviour, from the documentation:
//! - `ipsec initnss` "initialises the NSS database ... If already initialised, it will return an error"
//!   (ipsec-initnss(8)); libreswan 4.12 on AL2023 prints "NSS database already initialised - aborted", exit 42.
//! - `ipsec checknss` "checks or initialises the NSS database ... If database exists returns successfully"
//!   (ipsec-checknss(8), libreswan 4.14 and 5.2 as packaged by Ubuntu).
//! - The AL2023 (Fedora-family) build keeps the database in /etc/ipsec.d, not Debian's /var/lib/ipsec/nss: the stub
//!   keeps it in a temporary directory standing for /etc/ipsec.d.
//! - `ipsec showhostkey --list` prints `< 1> RSA keyid: AwEAA... ckaid: HEX`; `--left --ckaid HEX` prints the
//!   `leftrsasigkey=0s...` line (libreswan 4).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Basic utilities the script and the stubs use, linked from this machine into the test's PATH.
const TOOLS: &[&str] = &[
    "sh", "sed", "grep", "head", "tail", "cat", "mkdir", "rm", "cp", "chmod", "mktemp", "timeout",
    "od", "tr", "date",
];

const IPSEC_AL2023: &str = r#"#!/bin/sh
# libreswan 4.12 as built for AL2023: NSS database in /etc/ipsec.d (here $STUB_NSSDIR).
db=$STUB_NSSDIR
echo "ipsec $*" >>"$STUB_LOG"
case $1 in
initnss)
  if [ -f "$db/cert9.db" ]; then echo "NSS database already initialised - aborted" >&2; exit 42; fi
  mkdir -p "$db"; : >"$db/cert9.db"; : >"$db/key4.db"; echo "Initializing NSS database" ;;
checknss)
  if [ ! -f "$db/cert9.db" ]; then mkdir -p "$db"; : >"$db/cert9.db"; : >"$db/key4.db"; echo "Initializing NSS database"; fi ;;
newhostkey)
  [ -f "$db/cert9.db" ] || { echo "ipsec newhostkey: NSS database not initialised" >&2; exit 1; }
  # A new key every time, so that a second key would be noticed.
  id=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
  echo "$id" >>"$db/keys"
  echo "Generated RSA key pair with CKAID $id was stored in the NSS database" >&2 ;;
showhostkey)
  case "$*" in
  *--list*)
    n=0; [ -f "$db/keys" ] && while read -r id; do n=$((n+1)); echo "< $n> RSA keyid: AwEAAb$n ckaid: $id"; done <"$db/keys" ;;
  *--left*--ckaid*)
    id=$4
    grep -qx "$id" "$db/keys" 2>/dev/null || { echo "ipsec showhostkey: no key with CKAID $id" >&2; exit 1; }
    printf '\t# rsakey AwEAAb\n\tleftrsasigkey=0sAwEAA%s\n' "$id" ;;
  esac ;;
*) echo "ipsec: unexpected $*" >&2; exit 2 ;;
esac
"#;

/// A stub that logs its arguments and succeeds.
fn logging_stub(name: &str) -> String {
    format!("#!/bin/sh\necho \"{name} $*\" >>\"$STUB_LOG\"\n")
}

const IPTABLES_NFT: &str =
    "#!/bin/sh\n[ \"$1\" = --version ] && echo 'iptables v1.8.8 (nf_tables)'\n";
const IPTABLES_LEGACY: &str =
    "#!/bin/sh\n[ \"$1\" = --version ] && echo 'iptables v1.8.7 (legacy)'\n";

const MODPROBE: &str = r#"#!/bin/sh
echo "modprobe $*" >>"$STUB_LOG"
for f in ${STUB_MODPROBE_FAIL:-}; do
  [ "$1" = "$f" ] && { echo "modprobe: FATAL: Module $1 not found in directory /lib/modules/6.1.0-test" >&2; exit 1; }
done
exit 0
"#;

/// dnf/apt-get: log, then "install" the packages by copying their stubs from the repo dir into bin.
fn package_manager(name: &str) -> String {
    format!(
        r#"#!/bin/sh
echo "{name} $* DEBIAN_FRONTEND=${{DEBIAN_FRONTEND:-}}" >>"$STUB_LOG"
[ "${{STUB_OFFLINE:-}}" = 1 ] && {{ echo "Could not resolve host: mirror" >&2; exit 1; }}
case " $* " in *" install "*) cp "$STUB_REPO"/* "$STUB_BIN"/ ;; esac
exit 0
"#
    )
}

struct Host {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Host {
    fn root(&self, p: &str) -> PathBuf {
        self.root.join(p)
    }
    fn log(&self) -> String {
        fs::read_to_string(self.root("log")).unwrap_or_default()
    }

    /// An AL2023-like host: libreswan and iptables-nft installed (in bin), or only available from the
    /// package manager (in repo) when `installed` is false.
    fn new(installed: bool, iptables: &str, pm: Option<&str>) -> Host {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        for d in ["bin", "tools", "repo", "etc-ipsec.d"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let h = Host { _tmp: tmp, root };
        for t in TOOLS {
            let real = which(t).unwrap_or_else(|| panic!("{t} not found on this machine"));
            std::os::unix::fs::symlink(real, h.root("tools").join(t)).unwrap();
        }
        let pkgs = if installed { "bin" } else { "repo" };
        write_exec(&h.root(pkgs).join("ipsec"), IPSEC_AL2023);
        write_exec(
            &h.root(pkgs).join("iptables-restore"),
            &logging_stub("iptables-restore"),
        );
        write_exec(&h.root(pkgs).join("iptables"), iptables);
        write_exec(&h.root("bin").join("modprobe"), MODPROBE);
        if let Some(pm) = pm {
            write_exec(&h.root("bin").join(pm), &package_manager(pm));
        }
        fs::write(h.root("prepare.sh"), vpclink::render::prepare_tunnel_host()).unwrap();
        h
    }

    fn run(&self, envs: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.root("bin").display(),
            self.root("tools").display()
        );
        let mut c = Command::new(self.root("tools").join("sh"));
        c.arg(self.root("prepare.sh"))
            .env_clear()
            .env("PATH", path)
            .env("TMPDIR", &self.root)
            .env("STUB_NSSDIR", self.root("etc-ipsec.d"))
            .env("STUB_LOG", self.root("log"))
            .env("STUB_BIN", self.root("bin"))
            .env("STUB_REPO", self.root("repo"));
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

fn write_exec(p: &Path, content: &str) {
    fs::write(p, content).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/bin".into(), "/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn key(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.trim_end()
            .lines()
            .last()
            .unwrap_or("")
            .contains("rsasigkey=0s"),
        "the last line must be the key:\n{}",
        text(o)
    );
    vpclink::render::parse_rsasigkey(&out).expect("a key vpclink can parse")
}

/// AL2023: a second `configure` runs the script on a host whose NSS database exists (in /etc/ipsec.d). It used to
/// run `ipsec initnss` again (exit 42, "NSS database already initialised - aborted").
#[test]
fn al2023_second_run_succeeds_with_the_same_key() {
    let h = Host::new(true, IPTABLES_NFT, Some("dnf"));
    let first = h.run(&[]);
    assert!(first.status.success(), "first run:\n{}", text(&first));
    let second = h.run(&[]);
    assert!(second.status.success(), "second run:\n{}", text(&second));
    assert_eq!(
        key(&first),
        key(&second),
        "a re-run must print the same key"
    );
    let log = h.log();
    assert_eq!(
        log.matches("ipsec newhostkey").count(),
        1,
        "one key, made once:\n{log}"
    );
    assert!(
        !log.contains("dnf"),
        "nothing installed when present:\n{log}"
    );
    // The kernel modules, nft_compat included since iptables says nf_tables; on both runs.
    for m in ["ip_gre", "dummy", "xt_policy", "xt_NETMAP", "nft_compat"] {
        assert_eq!(
            log.matches(&format!("modprobe {m}\n")).count(),
            2,
            "modprobe {m}:\n{log}"
        );
    }
}

/// First boot without internet: cloud-init could not install libreswan; the script installs it with dnf.
#[test]
fn missing_packages_are_installed_with_dnf() {
    let h = Host::new(false, IPTABLES_NFT, Some("dnf"));
    let o = h.run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    key(&o);
    let log = h.log();
    let dnf = log
        .lines()
        .find(|l| l.starts_with("dnf "))
        .expect("dnf was called");
    assert!(dnf.contains("install") && dnf.contains("-y"), "{dnf}");
    assert!(
        dnf.contains(" libreswan ") && dnf.contains(" iptables-nft "),
        "{dnf}"
    );
    // A second run finds them and installs nothing.
    let o = h.run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(h.log().matches("dnf ").count(), 1);
}

/// Debian/Ubuntu: apt-get update, then a noninteractive install of libreswan and iptables.
#[test]
fn missing_packages_are_installed_with_apt_get() {
    let h = Host::new(false, IPTABLES_NFT, Some("apt-get"));
    let o = h.run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    key(&o);
    let log = h.log();
    let apt: Vec<&str> = log.lines().filter(|l| l.starts_with("apt-get ")).collect();
    assert_eq!(apt.len(), 2, "{log}");
    assert!(apt[0].contains(" update "), "update first: {}", apt[0]);
    assert!(
        apt[1].contains(" install libreswan iptables ") && apt[1].contains(" -y "),
        "{}",
        apt[1]
    );
    assert!(
        apt.iter()
            .all(|l| l.ends_with("DEBIAN_FRONTEND=noninteractive")),
        "{log}"
    );
}

/// Still no internet: the install fails and the script says what to do (exit 3), before any key is made.
#[test]
fn failed_install_exits_3_and_says_why() {
    let h = Host::new(false, IPTABLES_NFT, Some("dnf"));
    let o = h.run(&[("STUB_OFFLINE", "1")]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("could not install libreswan iptables-nft with dnf"),
        "{err}"
    );
    assert!(
        err.contains("Could not resolve host"),
        "the package manager's own words: {err}"
    );
    assert!(!h.log().contains("newhostkey"));
}

/// No package manager at all: the existing message, exit 3.
#[test]
fn no_package_manager_keeps_the_old_message() {
    let h = Host::new(false, IPTABLES_NFT, None);
    let o = h.run(&[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("libreswan is not installed (ipsec not found)")
    );
}

/// A kernel without NETMAP: exit 4, naming the module and what to do, before any key is made.
#[test]
fn missing_kernel_module_exits_4_naming_it() {
    let h = Host::new(true, IPTABLES_NFT, Some("dnf"));
    let o = h.run(&[("STUB_MODPROBE_FAIL", "xt_NETMAP")]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.contains("kernel module xt_NETMAP cannot be loaded"),
        "{err}"
    );
    assert!(first.contains("run vpclink configure again"), "{err}");
    assert!(!h.log().contains("newhostkey"));
}

/// iptables-legacy needs no nft_compat.
#[test]
fn legacy_iptables_does_not_load_nft_compat() {
    let h = Host::new(true, IPTABLES_LEGACY, None);
    let o = h.run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let log = h.log();
    assert!(
        log.contains("modprobe xt_policy") && !log.contains("nft_compat"),
        "{log}"
    );
}
