//! `vpclink configure`: pin the host keys, then configure both tunnel hosts over SSH. `up` ends the same way.

use super::{connect, targets_of};
use crate::cli::NameArg;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::side::{PerSide, Side};
use crate::state::{LinkState, StateFiles};

/// How long `up` and `configure` wait for cloud-init to print host keys on a new instance's console
/// (VPCLINK_CONSOLE_KEY_WAIT, default 600 s). cloud-init prints them late (keys_to_console runs in its final stage,
/// after the packages are installed: 95-100 s in the lab's first boots), which takes minutes on a slow mirror; past
/// this, configure trusts the key on first use, with a warning.
fn console_key_budget() -> std::time::Duration {
    std::time::Duration::from_secs(crate::settings::get().console_key_wait_s)
}
/// Pin host keys, then configure both tunnel hosts off the async workers (the SSH layer blocks). Shared by
/// `configure` and `up`; returns the report and the state as configure left it.
pub(super) async fn configure_link(
    files: &StateFiles,
    out: &Output,
) -> Result<(crate::configure::ConfigureReport, LinkState)> {
    pin_host_keys(files, out).await?;
    refuse_loopback_ssh(&files.load()?)?;
    let (files, out) = (files.clone(), *out);
    tokio::task::spawn_blocking(move || {
        let mut state = files.load()?;
        let report = crate::configure::configure(&files, &mut state, &out)?;
        Ok((report, state))
    })
    .await
    .map_err(|e| Error::Runtime(format!("configure task failed: {e}")))?
}

/// Pin the host key of every instance that has none, from its console output (see provision::host_keys). Hosts
/// without an instance id (a lab) or whose console stays silent are left to trust-on-first-use in configure.
pub(super) async fn pin_host_keys(files: &StateFiles, out: &Output) -> Result<()> {
    use crate::provision::host_keys;
    let mut state = files.load()?;
    let wanted = PerSide::new(
        host_keys::unpinned(&state, Side::East),
        host_keys::unpinned(&state, Side::West),
    );
    if wanted.east.is_empty() && wanted.west.is_empty() {
        return Ok(());
    }
    let targets = targets_of(&state);
    let aws = connect(targets, None).await?;
    let pb = out.spinner("reading SSH host keys from the instances' consoles");
    let (east, west) = tokio::join!(
        host_keys::read_keys(&aws.east, &state.name, wanted.east, console_key_budget()),
        host_keys::read_keys(&aws.west, &state.name, wanted.west, console_key_budget())
    );
    pb.finish_and_clear();
    for (side, found) in [(Side::East, east), (Side::West, west)] {
        for (role, key) in found {
            let s = state.side_mut(side);
            let host = match role {
                crate::state::Role::Tunnel => s.tunnel.as_mut(),
                crate::state::Role::Test => s.test.as_mut(),
            };
            if let Some(h) = host {
                h.host_key = Some(key);
            }
        }
    }
    files.save(&state)?;
    Ok(())
}

/// Emulators hand out Elastic IPs in 127.0.0.0/8: SSH to port 22 there would reach this machine's own sshd, not a
/// tunnel host. (A lab that forwards loopback ports to its guests uses other ports.)
pub(super) fn refuse_loopback_ssh(state: &LinkState) -> Result<()> {
    if crate::settings::get().allow_loopback_ssh {
        return Ok(());
    }
    for side in Side::BOTH {
        let target = state
            .side(side)
            .tunnel
            .as_ref()
            .and_then(|h| h.ssh.as_ref())
            .filter(|t| t.port == 22)
            .map(|t| t.host.clone());
        if let Some(ip) = target
            .and_then(|h| h.parse::<std::net::Ipv4Addr>().ok())
            .filter(|ip| ip.is_loopback())
        {
            return Err(Error::Runtime(format!(
                "provisioned, but the {side} tunnel host's address {ip} is a loopback address (an emulator such as LocalStack?); configure would SSH to this machine. Use `up --no-configure` there, or set VPCLINK_ALLOW_LOOPBACK_SSH=1 if a lab forwards it"
            )));
        }
    }
    Ok(())
}

pub(super) async fn configure_cmd(a: &NameArg, out: &Output) -> Result<()> {
    let files = StateFiles::for_link(&a.name)?;
    let _lock = crate::lock::acquire(&files).await?;
    let (report, _) = configure_link(&files, out).await?;
    out.emit(&report, || crate::configure::human(&report));
    Ok(())
}
