//! Calls that change something. Each starts with `begin`: recorded instead of made under --dry-run.

use super::{Ec2, LaunchSpec, R};
use crate::aws::error::AwsError;
use crate::aws::tags::LinkTags;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, HttpTokensState, Instance, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceType, IpPermission, ResourceType, Tag,
};

impl Ec2 {
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

    /// Add or overwrite tags on a resource the link owns.
    pub async fn create_tags(&self, resource_id: &str, tags: Vec<(String, String)>) -> R<()> {
        let keys: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
        if self.begin(
            "ec2:CreateTags",
            format!("Resources={resource_id} Tags={}", keys.join(",")),
        )? {
            return Ok(());
        }
        self.client
            .create_tags()
            .resources(resource_id)
            .set_tags(Some(
                tags.into_iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map(|_| ())
            .map_err(self.err("ec2:CreateTags", resource_id))
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

    pub(super) fn run_instances_request(
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

    pub async fn start_instance(&self, instance_id: &str) -> R<()> {
        if self.begin("ec2:StartInstances", format!("InstanceIds={instance_id}"))? {
            return Ok(());
        }
        self.client
            .start_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map(|_| ())
            .map_err(self.err("ec2:StartInstances", instance_id))
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
