//! Permission probes: the real call with DryRun=true; Ok(()) means "would have succeeded".

use super::{dry_run_outcome, Ec2, LaunchSpec, R};
use aws_sdk_ec2::types::DomainType;

impl Ec2 {
    pub async fn probe_import_key_pair(&self, name: &str, public_key: &str) -> R<()> {
        let r = self
            .client
            .import_key_pair()
            .dry_run(true)
            .key_name(name)
            .public_key_material(public_key.as_bytes().to_vec().into())
            .send()
            .await;
        dry_run_outcome(r.map(|_| ()).map_err(self.err("ec2:ImportKeyPair", name)))
    }

    pub async fn probe_create_security_group(&self, vpc_id: &str) -> R<()> {
        let r = self
            .client
            .create_security_group()
            .dry_run(true)
            .group_name("vpclink-preflight")
            // No space: moto, checking signatures, re-encodes a space in the form body differently from the SDK.
            .description("vpclink-preflight")
            .vpc_id(vpc_id)
            .send()
            .await;
        dry_run_outcome(
            r.map(|_| ())
                .map_err(self.err("ec2:CreateSecurityGroup", vpc_id)),
        )
    }

    pub async fn probe_allocate_address(&self) -> R<()> {
        let r = self
            .client
            .allocate_address()
            .dry_run(true)
            .domain(DomainType::Vpc)
            .send()
            .await;
        // A full pool answers AddressLimitExceeded: that is the quota (preflight's headroom check reports it with
        // the figures), not a missing permission.
        match dry_run_outcome(
            r.map(|_| ())
                .map_err(self.err("ec2:AllocateAddress", "an Elastic IP")),
        ) {
            Err(e) if e.code() == "AddressLimitExceeded" => Ok(()),
            other => other,
        }
    }

    pub async fn probe_run_instances(&self, spec: &LaunchSpec) -> R<()> {
        let r = self.run_instances_request(spec).dry_run(true).send().await;
        dry_run_outcome(
            r.map(|_| ())
                .map_err(self.err("ec2:RunInstances", spec.tags.name())),
        )
    }
}
