//! A thin wrapper over the EC2 client: one method per API call, each returning [`AwsError`] with the side, profile,
//! IAM action and resource filled in. With a [`DryRunLog`], calls that change something are recorded instead of
//! made and return placeholder ids (`<new ...>`); reads still go to AWS.

use super::error::AwsError;
use super::tags::LinkTags;
use crate::side::Side;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    AccountAttributeName, Address, AttributeBooleanValue, DomainType, Filter, HttpTokensState,
    Image, Instance, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceType,
    IpPermission, KeyPairInfo, NetworkInterface, ResourceType, RouteTable, SecurityGroup,
    SecurityGroupRule, Subnet, Vpc,
};
use aws_sdk_ec2::Client;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A call `--dry-run` would have made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedCall {
    pub side: Side,
    pub action: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct DryRunLog(Arc<Mutex<Vec<PlannedCall>>>);

impl DryRunLog {
    pub fn calls(&self) -> Vec<PlannedCall> {
        self.0.lock().expect("dry-run log").clone()
    }
}

/// Ids handed out in dry-run mode look like `<new east tunnel sg>`; nothing with such an id exists to be read.
pub fn is_placeholder(id: &str) -> bool {
    id.starts_with('<')
}

/// What RunInstances needs for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    pub tags: LinkTags,
    pub image_id: String,
    pub instance_type: String,
    pub subnet_id: String,
    pub security_group_id: String,
    pub key_name: String,
    /// Plain text; base64-encoded here.
    pub user_data: String,
    pub client_token: String,
}

#[derive(Debug, Clone)]
pub struct Ec2 {
    client: Client,
    side: Side,
    profile: String,
    dry: Option<DryRunLog>,
}

type R<T> = Result<T, AwsError>;

impl Ec2 {
    pub fn new(client: Client, side: Side, profile: &str, dry: Option<DryRunLog>) -> Self {
        Ec2 {
            client,
            side,
            profile: profile.to_string(),
            dry,
        }
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub fn profile(&self) -> &str {
        &self.profile
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry.is_some()
    }

    fn err<E: ProvideErrorMetadata + std::error::Error + 'static, Rs: std::fmt::Debug>(
        &self,
        action: &'static str,
        resource: impl Into<String>,
    ) -> impl FnOnce(aws_sdk_ec2::error::SdkError<E, Rs>) -> AwsError + '_ {
        let resource = resource.into();
        move |e| AwsError::new(self.side, &self.profile, action, resource, e)
    }

    /// Called first by every method that changes something. In dry-run mode: record the call and return true (the
    /// caller then returns a placeholder). Fails when a test injected a fault at this call (VPCLINK_FAULT_AT).
    fn begin(&self, action: &'static str, detail: impl Into<String>) -> R<bool> {
        if fault::hit() {
            return Err(AwsError {
                side: self.side,
                profile: self.profile.clone(),
                action,
                resource: detail.into(),
                code: Some("InjectedFault".into()),
                message: "fault injected by VPCLINK_FAULT_AT (tests only)".into(),
            });
        }
        Ok(match &self.dry {
            Some(log) => {
                log.0.lock().expect("dry-run log").push(PlannedCall {
                    side: self.side,
                    action,
                    detail: detail.into(),
                });
                true
            }
            None => false,
        })
    }

    fn placeholder(&self, what: &str) -> String {
        format!("<new {} {what}>", self.side)
    }

    // ---- reads -------------------------------------------------------------------------------------------------

    pub async fn describe_vpcs(&self, filters: Vec<Filter>) -> R<Vec<Vpc>> {
        self.client
            .describe_vpcs()
            .set_filters(Some(filters))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.err("ec2:DescribeVpcs", "VPCs"))
    }

    pub async fn describe_subnets(&self, vpc_id: &str) -> R<Vec<Subnet>> {
        self.client
            .describe_subnets()
            .filters(super::tags::filter("vpc-id", vpc_id))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.err("ec2:DescribeSubnets", vpc_id))
    }

    pub async fn describe_route_tables(&self, vpc_id: &str) -> R<Vec<RouteTable>> {
        self.client
            .describe_route_tables()
            .filters(super::tags::filter("vpc-id", vpc_id))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.err("ec2:DescribeRouteTables", vpc_id))
    }

    /// The account's Elastic IP quota for VPC addresses, when EC2 reports it.
    pub async fn elastic_ip_quota(&self) -> R<Option<u32>> {
        let out = self
            .client
            .describe_account_attributes()
            .attribute_names(AccountAttributeName::from("vpc-max-elastic-ips"))
            .send()
            .await
            .map_err(self.err("ec2:DescribeAccountAttributes", "vpc-max-elastic-ips"))?;
        Ok(out
            .account_attributes()
            .iter()
            .filter(|a| a.attribute_name() == Some("vpc-max-elastic-ips"))
            .flat_map(|a| a.attribute_values())
            .find_map(|v| v.attribute_value().and_then(|s| s.parse().ok())))
    }

    pub async fn describe_addresses(&self, filters: Vec<Filter>) -> R<Vec<Address>> {
        let out = self
            .client
            .describe_addresses()
            .set_filters((!filters.is_empty()).then_some(filters))
            .send()
            .await
            .map_err(self.err("ec2:DescribeAddresses", "Elastic IPs"))?;
        Ok(out.addresses.unwrap_or_default())
    }

    pub async fn describe_address(&self, allocation_id: &str) -> R<Option<Address>> {
        if is_placeholder(allocation_id) {
            return Ok(None);
        }
        match self
            .client
            .describe_addresses()
            .allocation_ids(allocation_id)
            .send()
            .await
        {
            Ok(out) => Ok(out.addresses.unwrap_or_default().into_iter().next()),
            Err(e) => not_found_is_none(self.err("ec2:DescribeAddresses", allocation_id)(e)),
        }
    }

    /// Instances matching the filters, in every state (callers decide what "terminated" means to them).
    pub async fn describe_instances(&self, filters: Vec<Filter>) -> R<Vec<Instance>> {
        let reservations: Vec<_> = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.err("ec2:DescribeInstances", "instances"))?;
        Ok(reservations
            .into_iter()
            .flat_map(|r| r.instances.unwrap_or_default())
            .collect())
    }

    pub async fn describe_instance(&self, instance_id: &str) -> R<Option<Instance>> {
        if is_placeholder(instance_id) {
            return Ok(None);
        }
        match self
            .client
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .reservations
                .unwrap_or_default()
                .into_iter()
                .flat_map(|r| r.instances.unwrap_or_default())
                .next()),
            Err(e) => not_found_is_none(self.err("ec2:DescribeInstances", instance_id)(e)),
        }
    }

    pub async fn describe_security_groups(&self, filters: Vec<Filter>) -> R<Vec<SecurityGroup>> {
        self.client
            .describe_security_groups()
            .set_filters(Some(filters))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.err("ec2:DescribeSecurityGroups", "security groups"))
    }

    pub async fn describe_security_group_rules(&self, group_id: &str) -> R<Vec<SecurityGroupRule>> {
        if is_placeholder(group_id) {
            return Ok(Vec::new());
        }
        self.client
            .describe_security_group_rules()
            .filters(super::tags::filter("group-id", group_id))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.err("ec2:DescribeSecurityGroupRules", group_id))
    }

    pub async fn describe_key_pairs(&self, filters: Vec<Filter>) -> R<Vec<KeyPairInfo>> {
        let out = self
            .client
            .describe_key_pairs()
            .set_filters(Some(filters))
            .include_public_key(true)
            .send()
            .await
            .map_err(self.err("ec2:DescribeKeyPairs", "key pairs"))?;
        Ok(out.key_pairs.unwrap_or_default())
    }

    pub async fn describe_network_interface(&self, eni_id: &str) -> R<Option<NetworkInterface>> {
        if is_placeholder(eni_id) {
            return Ok(None);
        }
        match self
            .client
            .describe_network_interfaces()
            .network_interface_ids(eni_id)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .network_interfaces
                .unwrap_or_default()
                .into_iter()
                .next()),
            Err(e) => not_found_is_none(self.err("ec2:DescribeNetworkInterfaces", eni_id)(e)),
        }
    }

    pub async fn describe_image(&self, image_id: &str) -> R<Option<Image>> {
        match self
            .client
            .describe_images()
            .image_ids(image_id)
            .send()
            .await
        {
            Ok(out) => Ok(out.images.unwrap_or_default().into_iter().next()),
            Err(e) => not_found_is_none(self.err("ec2:DescribeImages", image_id)(e)),
        }
    }

    // ---- permission probes: DryRun=true; Ok(()) means "would have succeeded" -----------------------------------

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
            .description("vpclink preflight")
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
        dry_run_outcome(
            r.map(|_| ())
                .map_err(self.err("ec2:AllocateAddress", "an Elastic IP")),
        )
    }

    pub async fn probe_run_instances(&self, spec: &LaunchSpec) -> R<()> {
        let r = self.run_instances_request(spec).dry_run(true).send().await;
        dry_run_outcome(
            r.map(|_| ())
                .map_err(self.err("ec2:RunInstances", spec.tags.name())),
        )
    }

    // ---- changes ----------------------------------------------------------------------------------------------

    pub async fn import_key_pair(
        &self,
        name: &str,
        public_key: &str,
        tags: &LinkTags,
    ) -> R<String> {
        if self.begin(
            "ec2:ImportKeyPair",
            format!("KeyName={name} (ed25519, public half only)"),
        )? {
            return Ok(self.placeholder("key pair"));
        }
        let out = self
            .client
            .import_key_pair()
            .key_name(name)
            .public_key_material(public_key.as_bytes().to_vec().into())
            .tag_specifications(tags.spec(ResourceType::KeyPair))
            .send()
            .await
            .map_err(self.err("ec2:ImportKeyPair", name))?;
        Ok(out.key_pair_id.unwrap_or_else(|| name.to_string()))
    }

    pub async fn delete_key_pair(&self, name: &str) -> R<()> {
        if self.begin("ec2:DeleteKeyPair", format!("KeyName={name}"))? {
            return Ok(());
        }
        self.client
            .delete_key_pair()
            .key_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(self.err("ec2:DeleteKeyPair", name))
    }

    pub async fn create_security_group(
        &self,
        vpc_id: &str,
        description: &str,
        tags: &LinkTags,
    ) -> R<String> {
        let name = tags.name();
        if self.begin(
            "ec2:CreateSecurityGroup",
            format!("GroupName={name} VpcId={vpc_id}"),
        )? {
            return Ok(self.placeholder(&format!("{} security group", tags.role)));
        }
        let out = self
            .client
            .create_security_group()
            .group_name(&name)
            .description(description)
            .vpc_id(vpc_id)
            .tag_specifications(tags.spec(ResourceType::SecurityGroup))
            .send()
            .await
            .map_err(self.err("ec2:CreateSecurityGroup", &name))?;
        Ok(out.group_id.unwrap_or_default())
    }

    pub async fn authorize_ingress(
        &self,
        group_id: &str,
        permissions: Vec<IpPermission>,
        what: &str,
    ) -> R<()> {
        if self.begin(
            "ec2:AuthorizeSecurityGroupIngress",
            format!("GroupId={group_id} {what}"),
        )? {
            return Ok(());
        }
        self.client
            .authorize_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(permissions))
            .send()
            .await
            .map(|_| ())
            .map_err(self.err(
                "ec2:AuthorizeSecurityGroupIngress",
                format!("{group_id} ({what})"),
            ))
    }

    pub async fn revoke_ingress(&self, group_id: &str, rule_ids: Vec<String>) -> R<()> {
        if self.begin(
            "ec2:RevokeSecurityGroupIngress",
            format!("GroupId={group_id} rules={}", rule_ids.join(",")),
        )? {
            return Ok(());
        }
        self.client
            .revoke_security_group_ingress()
            .group_id(group_id)
            .set_security_group_rule_ids(Some(rule_ids))
            .send()
            .await
            .map(|_| ())
            .map_err(self.err("ec2:RevokeSecurityGroupIngress", group_id))
    }

    pub async fn delete_security_group(&self, group_id: &str) -> R<()> {
        if self.begin("ec2:DeleteSecurityGroup", format!("GroupId={group_id}"))? {
            return Ok(());
        }
        self.client
            .delete_security_group()
            .group_id(group_id)
            .send()
            .await
            .map(|_| ())
            .map_err(self.err("ec2:DeleteSecurityGroup", group_id))
    }

    fn run_instances_request(
        &self,
        spec: &LaunchSpec,
    ) -> aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder {
        use base64::Engine;
        self.client
            .run_instances()
            .image_id(&spec.image_id)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .subnet_id(&spec.subnet_id)
            .security_group_ids(&spec.security_group_id)
            .set_key_name((!spec.key_name.is_empty()).then(|| spec.key_name.clone()))
            .user_data(base64::engine::general_purpose::STANDARD.encode(&spec.user_data))
            .client_token(&spec.client_token)
            // IMDSv2 only: a session token is required, and one hop keeps it off forwarded traffic.
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .http_put_response_hop_limit(1)
                    .build(),
            )
            .tag_specifications(spec.tags.spec(ResourceType::Instance))
            .tag_specifications(spec.tags.spec(ResourceType::Volume))
    }

    pub async fn run_instance(&self, spec: &LaunchSpec) -> R<Instance> {
        if self.begin(
            "ec2:RunInstances",
            format!(
                "Name={} ImageId={} InstanceType={} SubnetId={} SecurityGroupIds={} KeyName={} HttpTokens=required ClientToken={}",
                spec.tags.name(),
                spec.image_id,
                spec.instance_type,
                spec.subnet_id,
                spec.security_group_id,
                spec.key_name,
                spec.client_token
            ),
        )? {
            return Ok(Instance::builder()
                .instance_id(self.placeholder(&format!("{} instance", spec.tags.role)))
                .build());
        }
        let out = self
            .run_instances_request(spec)
            .send()
            .await
            .map_err(self.err("ec2:RunInstances", spec.tags.name()))?;
        out.instances
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or_else(|| AwsError {
                side: self.side,
                profile: self.profile.clone(),
                action: "ec2:RunInstances",
                resource: spec.tags.name(),
                code: None,
                message: "RunInstances returned no instance".into(),
            })
    }

    pub async fn terminate_instance(&self, instance_id: &str) -> R<()> {
        if self.begin(
            "ec2:TerminateInstances",
            format!("InstanceIds={instance_id}"),
        )? {
            return Ok(());
        }
        self.client
            .terminate_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map(|_| ())
            .map_err(self.err("ec2:TerminateInstances", instance_id))
    }

    pub async fn allocate_address(&self, tags: &LinkTags) -> R<(String, String)> {
        if self.begin(
            "ec2:AllocateAddress",
            format!("Domain=vpc Name={}", tags.name()),
        )? {
            return Ok((self.placeholder("Elastic IP"), "0.0.0.0".into()));
        }
        let out = self
            .client
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(tags.spec(ResourceType::ElasticIp))
            .send()
            .await
            .map_err(self.err("ec2:AllocateAddress", tags.name()))?;
        Ok((
            out.allocation_id.unwrap_or_default(),
            out.public_ip.unwrap_or_default(),
        ))
    }

    pub async fn associate_address(&self, allocation_id: &str, eni_id: &str) -> R<String> {
        if self.begin(
            "ec2:AssociateAddress",
            format!("AllocationId={allocation_id} NetworkInterfaceId={eni_id}"),
        )? {
            return Ok(self.placeholder("association"));
        }
        let out = self
            .client
            .associate_address()
            .allocation_id(allocation_id)
            .network_interface_id(eni_id)
            .allow_reassociation(false)
            .send()
            .await
            .map_err(self.err(
                "ec2:AssociateAddress",
                format!("{allocation_id} -> {eni_id}"),
            ))?;
        Ok(out.association_id.unwrap_or_default())
    }

    pub async fn disassociate_address(&self, association_id: &str) -> R<()> {
        if self.begin(
            "ec2:DisassociateAddress",
            format!("AssociationId={association_id}"),
        )? {
            return Ok(());
        }
        self.client
            .disassociate_address()
            .association_id(association_id)
            .send()
            .await
            .map(|_| ())
            .map_err(self.err("ec2:DisassociateAddress", association_id))
    }

    pub async fn release_address(&self, allocation_id: &str) -> R<()> {
        if self.begin(
            "ec2:ReleaseAddress",
            format!("AllocationId={allocation_id}"),
        )? {
            return Ok(());
        }
        self.client
            .release_address()
            .allocation_id(allocation_id)
            .send()
            .await
            .map(|_| ())
            .map_err(self.err("ec2:ReleaseAddress", allocation_id))
    }

    /// A forwarding host must accept packets not addressed to it: source/dest check off on its interface.
    pub async fn disable_source_dest_check(&self, eni_id: &str) -> R<()> {
        if self.begin(
            "ec2:ModifyNetworkInterfaceAttribute",
            format!("NetworkInterfaceId={eni_id} SourceDestCheck=false"),
        )? {
            return Ok(());
        }
        self.client
            .modify_network_interface_attribute()
            .network_interface_id(eni_id)
            .source_dest_check(AttributeBooleanValue::builder().value(false).build())
            .send()
            .await
            .map(|_| ())
            .map_err(self.err("ec2:ModifyNetworkInterfaceAttribute", eni_id))
    }

    pub async fn create_route(
        &self,
        route_table_id: &str,
        destination: &str,
        eni_id: &str,
    ) -> R<()> {
        if self.begin("ec2:CreateRoute", format!("RouteTableId={route_table_id} DestinationCidrBlock={destination} NetworkInterfaceId={eni_id}"))? {
            return Ok(());
        }
        self.client
            .create_route()
            .route_table_id(route_table_id)
            .destination_cidr_block(destination)
            .network_interface_id(eni_id)
            .send()
            .await
            .map(|_| ())
            .map_err(self.err("ec2:CreateRoute", format!("{route_table_id} {destination}")))
    }

    /// Only for routes this link owns (recorded in its state), pointed at a replaced tunnel host.
    pub async fn replace_route(
        &self,
        route_table_id: &str,
        destination: &str,
        eni_id: &str,
    ) -> R<()> {
        if self.begin("ec2:ReplaceRoute", format!("RouteTableId={route_table_id} DestinationCidrBlock={destination} NetworkInterfaceId={eni_id}"))? {
            return Ok(());
        }
        self.client
            .replace_route()
            .route_table_id(route_table_id)
            .destination_cidr_block(destination)
            .network_interface_id(eni_id)
            .send()
            .await
            .map(|_| ())
            .map_err(self.err(
                "ec2:ReplaceRoute",
                format!("{route_table_id} {destination}"),
            ))
    }

    pub async fn delete_route(&self, route_table_id: &str, destination: &str) -> R<()> {
        if self.begin(
            "ec2:DeleteRoute",
            format!("RouteTableId={route_table_id} DestinationCidrBlock={destination}"),
        )? {
            return Ok(());
        }
        self.client
            .delete_route()
            .route_table_id(route_table_id)
            .destination_cidr_block(destination)
            .send()
            .await
            .map(|_| ())
            .map_err(self.err("ec2:DeleteRoute", format!("{route_table_id} {destination}")))
    }
}

/// Test hook: VPCLINK_FAULT_AT=N makes the Nth change this process attempts fail, as an API error would, so the tests
/// can prove that a run that died there resumes.
mod fault {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    static AT: OnceLock<Option<usize>> = OnceLock::new();
    static CALLS: AtomicUsize = AtomicUsize::new(0);

    pub fn hit() -> bool {
        let at = *AT.get_or_init(|| {
            std::env::var("VPCLINK_FAULT_AT")
                .ok()
                .and_then(|v| v.parse().ok())
        });
        at.is_some_and(|at| CALLS.fetch_add(1, Ordering::SeqCst) + 1 == at)
    }
}

fn not_found_is_none<T>(e: AwsError) -> R<Option<T>> {
    if e.is_not_found() {
        Ok(None)
    } else {
        Err(e)
    }
}

/// DryRunOperation is the success answer of a DryRun call.
fn dry_run_outcome(r: R<()>) -> R<()> {
    match r {
        Err(e) if e.is_dry_run_ok() => Ok(()),
        other => other,
    }
}

/// Retry `f` while EC2 says "not found" about something just created (eventual consistency), up to ~40 s.
pub async fn retry_not_found<T, F, Fut>(mut f: F) -> R<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = R<T>>,
{
    let mut delay = Duration::from_millis(250);
    let mut waited = Duration::ZERO;
    loop {
        match f().await {
            Err(e) if e.is_not_found() && waited < Duration::from_secs(40) => {
                tracing::debug!("{e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                waited += delay;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}
