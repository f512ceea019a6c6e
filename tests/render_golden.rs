//! Golden files for everything configure pushes to a tunnel host, per OS. Reviewers read tests/golden/; after an
//! intended change, regenerate with `UPDATE_GOLDEN=1 cargo test --test render_golden` and review the diff.
//! `UPDATE_GOLDEN` must be exactly `1`, and is refused under `CI` (any non-empty value): CI only compares.

use std::path::{Path, PathBuf};
use vpclink::link::{LinkPlan, SidePlan};
use vpclink::render::{self, cloud_init, TunnelFacts, TunnelView};
use vpclink::side::Side;
use vpclink::state::{Os, Role};

fn plan() -> LinkPlan {
    let side = |profile: &str, cidrs: &[&str], mapped: &[&str]| SidePlan {
        profile: profile.into(),
        region: "eu-west-1".into(),
        account: "111111111111".into(),
        vpc_id: format!("vpc-{profile}"),
        cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        mapped: mapped.iter().map(|c| c.parse().unwrap()).collect(),
        route_tables: vec![format!("rtb-{profile}-main")],
        public_subnet: None,
        skipped_tables: Vec::new(),
    };
    LinkPlan {
        name: "golden".into(),
        overlapping: true,
        // East has a secondary CIDR so that multi-range NETMAP is visible in the goldens.
        east: side(
            "east",
            &["10.0.0.0/16", "10.5.0.0/24"],
            &["10.1.0.0/16", "10.3.0.0/24"],
        ),
        west: side("west", &["10.0.0.0/16"], &["10.2.0.0/16"]),
    }
}

fn facts(side: Side, os: Os) -> TunnelFacts {
    let (public_ip, key) = match side {
        Side::East => ("198.51.100.10", "0sAwEAAeastEXAMPLEKEY"),
        Side::West => ("203.0.113.10", "0sAwEAAwestEXAMPLEKEY"),
    };
    TunnelFacts {
        private_ip: "10.0.0.10".parse().unwrap(),
        public_ip: public_ip.parse().unwrap(),
        uplink: "ens5".into(),
        os,
        rsa_pubkey: key.into(),
        libreswan: render::Libreswan::expected(os),
    }
}

/// Every file for one OS: per tunnel host its files, prepare and apply commands; the user-data per role.
fn rendered(os: Os) -> Vec<(PathBuf, String)> {
    let link = plan();
    let mut out = Vec::new();
    for side in Side::BOTH {
        let (local, peer) = (facts(side, os), facts(side.peer(), os));
        let view = TunnelView {
            link: &link,
            side,
            local: &local,
            peer: &peer,
        };
        let cfg = render::tunnel_host(&view);
        let dir = PathBuf::from(format!("{side}-tunnel"));
        for f in &cfg.files {
            let content = format!("# mode {:o}\n{}", f.mode, f.content);
            out.push((dir.join(f.path.trim_start_matches('/')), content));
        }
        out.push((dir.join("prepare.sh"), render::prepare_tunnel_host()));
        out.push((dir.join("apply.sh"), cfg.apply.join("\n") + "\n"));
    }
    out.push((
        "user-data/tunnel.yaml".into(),
        cloud_init::user_data(Role::Tunnel, os).into(),
    ));
    out.push((
        "user-data/test.yaml".into(),
        cloud_init::user_data(Role::Test, os).into(),
    ));
    out
}

/// Rewrite the goldens only when asked for exactly (`UPDATE_GOLDEN=1`), and never in CI: there a golden that no
/// longer matches must fail, whatever the environment says. Anything else set in `UPDATE_GOLDEN` is refused, so a
/// typo (`UPDATE_GOLDEN=yes`, `=0`) neither rewrites nor passes silently.
fn update_goldens(update: Option<&std::ffi::OsStr>, ci: Option<&std::ffi::OsStr>) -> bool {
    let Some(update) = update else {
        return false;
    };
    assert!(
        update == "1",
        "UPDATE_GOLDEN={update:?}: only UPDATE_GOLDEN=1 rewrites the goldens; unset it to compare"
    );
    assert!(
        ci.is_none_or(|v| v.is_empty()),
        "UPDATE_GOLDEN=1 under CI={ci:?}: goldens are never rewritten in CI; regenerate them locally and commit"
    );
    true
}

#[test]
fn update_golden_only_when_exactly_1_and_never_in_ci() {
    use std::ffi::OsStr;
    let caught = |u: Option<&str>, ci: Option<&str>| {
        std::panic::catch_unwind(|| update_goldens(u.map(OsStr::new), ci.map(OsStr::new)))
    };
    assert!(!caught(None, None).unwrap(), "unset: compare");
    assert!(!caught(None, Some("true")).unwrap(), "unset in CI: compare");
    assert!(caught(Some("1"), None).unwrap(), "exactly 1: rewrite");
    assert!(
        caught(Some("1"), Some("")).unwrap(),
        "CI set but empty: rewrite"
    );
    for other in ["0", "", "true", "yes", " 1", "1 ", "01"] {
        assert!(
            caught(Some(other), None).is_err(),
            "UPDATE_GOLDEN={other:?} must be refused"
        );
    }
    for ci in ["true", "1", "false"] {
        assert!(
            caught(Some("1"), Some(ci)).is_err(),
            "UPDATE_GOLDEN=1 under CI={ci:?} must be refused"
        );
    }
}

fn check(os_dir: &str, os: Os) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(os_dir);
    let update = update_goldens(
        std::env::var_os("UPDATE_GOLDEN").as_deref(),
        std::env::var_os("CI").as_deref(),
    );
    let files = rendered(os);
    let mut mismatched = Vec::new();
    for (rel, content) in &files {
        let path = root.join(rel);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(g) if g == *content => {}
            Ok(_) => mismatched.push(format!("{} differs", path.display())),
            Err(_) => mismatched.push(format!("{} missing", path.display())),
        }
    }
    // No stale goldens: every file under the OS folder is one the renderer makes.
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !files.iter().any(|(rel, _)| root.join(rel) == p) {
                mismatched.push(format!("{} is not rendered any more", p.display()));
            }
        }
    }
    assert!(
        mismatched.is_empty(),
        "golden files out of date (UPDATE_GOLDEN=1 to regenerate, then review):\n{}",
        mismatched.join("\n")
    );
}

#[test]
fn al2023_goldens() {
    check("al2023", Os::Al2023);
}

#[test]
fn ubuntu2404_goldens() {
    check("ubuntu2404", Os::Ubuntu2404);
}

#[test]
fn debian12_goldens() {
    check("debian12", Os::Debian12);
}

#[test]
fn debian13_goldens() {
    check("debian13", Os::Debian13);
}

#[test]
fn firewall_polices_gre_both_ways_before_anything_else() {
    let link = plan();
    let (e, w) = (facts(Side::East, Os::Al2023), facts(Side::West, Os::Al2023));
    let view = TunnelView {
        link: &link,
        side: Side::East,
        local: &e,
        peer: &w,
    };
    let cfg = render::tunnel_host(&view);
    let rules = &cfg
        .files
        .iter()
        .find(|f| f.path.ends_with("iptables.rules"))
        .unwrap()
        .content;
    let pos = |needle: &str| {
        rules
            .find(needle)
            .unwrap_or_else(|| panic!("missing: {needle}"))
    };
    // The ESP-only accept precedes the drop, in both directions.
    assert!(
        pos("-A INPUT -p gre -m policy --dir in --pol ipsec") < pos("-A INPUT -p gre -m comment")
    );
    assert!(
        pos("-A OUTPUT -p gre -m policy --dir out --pol ipsec")
            < pos("-A OUTPUT -p gre -m comment")
    );
    // NETMAP both ways for every own range; forward rules for every own x remote pair.
    for (real, mapped) in [
        ("10.0.0.0/16", "10.1.0.0/16"),
        ("10.5.0.0/24", "10.3.0.0/24"),
    ] {
        pos(&format!(
            "-A PREROUTING -i vpclink-gre -d {mapped} -j NETMAP --to {real}"
        ));
        pos(&format!(
            "-A POSTROUTING -o vpclink-gre -s {real} -j NETMAP --to {mapped}"
        ));
        pos(&format!(
            "-A FORWARD -i ens5 -o vpclink-gre -s {real} -d 10.2.0.0/16 -j ACCEPT"
        ));
    }
    // up.sh loads the firewall before it creates the tunnel.
    let up = &cfg
        .files
        .iter()
        .find(|f| f.path.ends_with("up.sh"))
        .unwrap()
        .content;
    assert!(up.find("iptables-restore").unwrap() < up.find("ip tunnel add").unwrap());
}

#[test]
fn rsasigkey_is_parsed_from_showhostkey_output() {
    let out = "\t# rsakey AwEAAbc\n\tleftrsasigkey=0sAwEAAbcdefghijklmnopqrstuvwxyz\n";
    assert_eq!(
        render::parse_rsasigkey(out).as_deref(),
        Some("0sAwEAAbcdefghijklmnopqrstuvwxyz")
    );
    assert_eq!(render::parse_rsasigkey("nothing here"), None);
}
