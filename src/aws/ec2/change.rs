//! Calls that change something, one thin method per call. Each goes through `change`: recorded instead of made
//! under --dry-run (returning a planned id where it creates something), its error naming the action and resource.

use super::{Ec2, Id, LaunchSpec, Made, R};
use crate::aws::error::AwsError;
use crate::aws::tags::LinkTags;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, HttpTokensState, IamInstanceProfileSpecification, Instance,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceType, IpPermission,
    ResourceType, Tag,
};

impl Ec2 {
    /// The key pair's id, as the state holds it (the id, or under --dry-run the planned one's text).
    pub async fn import_key_pair(
        &self,
        name: &str,
        public_key: &str,
        tags: &LinkTags,
    ) -> R<String> {
        let detail = format!("KeyName={name} (ed25519, public half only)");
        let planned = self.planned("key pair");
        let id = self
            .change("ec2:ImportKeyPair", detail, name, planned, || async {
                let out = self
                    .client
                    .import_key_pair()
                    .key_name(name)
                    .public_key_material(public_key.as_bytes().to_vec().into())
                    .tag_specifications(tags.spec(ResourceType::KeyPair))
                    .send()
                    .await?;
                Ok(Made::Real(
                    out.key_pair_id.unwrap_or_else(|| name.to_string()),
                ))
            })
            .await?;
        Ok(id.into_string())
    }

    pub async fn delete_key_pair(&self, name: &str) -> R<()> {
        let detail = format!("KeyName={name}");
        self.change("ec2:DeleteKeyPair", detail, name, (), || async {
            self.client.delete_key_pair().key_name(name).send().await?;
            Ok(())
        })
        .await
    }

    pub async fn create_security_group(
        &self,
        vpc_id: &str,
        description: &str,
        tags: &LinkTags,
    ) -> R<Id> {
        let name = tags.name();
        let detail = format!("GroupName={name} VpcId={vpc_id}");
        let planned = self.planned(&format!("{} security group", tags.role));
        self.change(
            "ec2:CreateSecurityGroup",
            detail,
            &name,
            planned,
            || async {
                let out = self
                    .client
                    .create_security_group()
                    .group_name(&name)
                    .description(description)
                    .vpc_id(vpc_id)
                    .tag_specifications(tags.spec(ResourceType::SecurityGroup))
                    .send()
                    .await?;
                Ok(Made::Real(out.group_id.unwrap_or_default()))
            },
        )
        .await
    }

    /// Add or overwrite tags on a resource the link owns.
    pub async fn create_tags(&self, resource_id: &str, tags: Vec<(String, String)>) -> R<()> {
        let keys: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
        let detail = format!("Resources={resource_id} Tags={}", keys.join(","));
        let tags = tags
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        self.change("ec2:CreateTags", detail, resource_id, (), || async {
            let request = self.client.create_tags().resources(resource_id);
            request.set_tags(Some(tags)).send().await?;
            Ok(())
        })
        .await
    }

    pub async fn authorize_ingress(
        &self,
        group_id: &str,
        permissions: Vec<IpPermission>,
        what: &str,
    ) -> R<()> {
        let detail = format!("GroupId={group_id} {what}");
        let resource = format!("{group_id} ({what})");
        let action = "ec2:AuthorizeSecurityGroupIngress";
        self.change(action, detail, resource, (), || async {
            self.client
                .authorize_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(permissions))
                .send()
                .await?;
            Ok(())
        })
        .await
    }

    pub async fn revoke_ingress(&self, group_id: &str, rule_ids: Vec<String>) -> R<()> {
        let detail = format!("GroupId={group_id} rules={}", rule_ids.join(","));
        let action = "ec2:RevokeSecurityGroupIngress";
        self.change(action, detail, group_id, (), || async {
            self.client
                .revoke_security_group_ingress()
                .group_id(group_id)
                .set_security_group_rule_ids(Some(rule_ids))
                .send()
                .await?;
            Ok(())
        })
        .await
    }

    pub async fn delete_security_group(&self, group_id: &str) -> R<()> {
        let detail = format!("GroupId={group_id}");
        self.change("ec2:DeleteSecurityGroup", detail, group_id, (), || async {
            let request = self.client.delete_security_group().group_id(group_id);
            request.send().await?;
            Ok(())
        })
        .await
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
            .set_iam_instance_profile(spec.iam_instance_profile.as_ref().map(|name| {
                IamInstanceProfileSpecification::builder()
                    .name(name)
                    .build()
            }))
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

    /// The instance RunInstances made; under --dry-run the planned id of the one it would make.
    pub async fn run_instance(&self, spec: &LaunchSpec) -> R<Made<Instance>> {
        let detail = format!(
            "Name={} ImageId={} InstanceType={} SubnetId={} SecurityGroupIds={} KeyName={} HttpTokens=required HopLimit=1{} ClientToken={}",
            spec.tags.name(),
            spec.image_id,
            spec.instance_type,
            spec.subnet_id,
            spec.security_group_id,
            spec.key_name,
            spec.iam_instance_profile
                .as_ref()
                .map(|p| format!(" IamInstanceProfile={p}"))
                .unwrap_or_default(),
            spec.client_token
        );
        let planned = Made::Planned(
            self.planned(&format!("{} instance", spec.tags.role))
                .into_string(),
        );
        let made = self
            .change(
                "ec2:RunInstances",
                detail,
                spec.tags.name(),
                Some(planned),
                || async {
                    let out = self.run_instances_request(spec).send().await?;
                    Ok(out
                        .instances
                        .unwrap_or_default()
                        .into_iter()
                        .next()
                        .map(Made::Real))
                },
            )
            .await?;
        made.ok_or_else(|| AwsError {
            side: self.side,
            profile: self.profile.clone(),
            action: "ec2:RunInstances",
            resource: spec.tags.name(),
            code: None,
            message: "RunInstances returned no instance".into(),
        })
    }

    pub async fn terminate_instance(&self, instance_id: &str) -> R<()> {
        let detail = format!("InstanceIds={instance_id}");
        self.change(
            "ec2:TerminateInstances",
            detail,
            instance_id,
            (),
            || async {
                let request = self.client.terminate_instances().instance_ids(instance_id);
                request.send().await?;
                Ok(())
            },
        )
        .await
    }

    pub async fn start_instance(&self, instance_id: &str) -> R<()> {
        let detail = format!("InstanceIds={instance_id}");
        self.change("ec2:StartInstances", detail, instance_id, (), || async {
            let request = self.client.start_instances().instance_ids(instance_id);
            request.send().await?;
            Ok(())
        })
        .await
    }

    /// (allocation id, public IP) of the new address; under --dry-run the planned allocation id.
    pub async fn allocate_address(&self, tags: &LinkTags) -> R<Made<(String, String)>> {
        let detail = format!("Domain=vpc Name={}", tags.name());
        let planned = Made::Planned(self.planned("Elastic IP").into_string());
        self.change(
            "ec2:AllocateAddress",
            detail,
            tags.name(),
            planned,
            || async {
                let out = self
                    .client
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(tags.spec(ResourceType::ElasticIp))
                    .send()
                    .await?;
                Ok(Made::Real((
                    out.allocation_id.unwrap_or_default(),
                    out.public_ip.unwrap_or_default(),
                )))
            },
        )
        .await
    }

    /// The association's id; under --dry-run a planned one.
    pub async fn associate_address(&self, allocation_id: &str, eni_id: &str) -> R<Id> {
        let detail = format!("AllocationId={allocation_id} NetworkInterfaceId={eni_id}");
        let resource = format!("{allocation_id} -> {eni_id}");
        let planned = self.planned("association");
        self.change(
            "ec2:AssociateAddress",
            detail,
            resource,
            planned,
            || async {
                let out = self
                    .client
                    .associate_address()
                    .allocation_id(allocation_id)
                    .network_interface_id(eni_id)
                    .allow_reassociation(false)
                    .send()
                    .await?;
                Ok(Made::Real(out.association_id.unwrap_or_default()))
            },
        )
        .await
    }

    pub async fn disassociate_address(&self, association_id: &str) -> R<()> {
        let detail = format!("AssociationId={association_id}");
        let action = "ec2:DisassociateAddress";
        self.change(action, detail, association_id, (), || async {
            let request = self.client.disassociate_address();
            request.association_id(association_id).send().await?;
            Ok(())
        })
        .await
    }

    pub async fn release_address(&self, allocation_id: &str) -> R<()> {
        let detail = format!("AllocationId={allocation_id}");
        self.change("ec2:ReleaseAddress", detail, allocation_id, (), || async {
            let request = self.client.release_address().allocation_id(allocation_id);
            request.send().await?;
            Ok(())
        })
        .await
    }

    /// A forwarding host must accept packets not addressed to it: source/dest check off on its interface.
    pub async fn disable_source_dest_check(&self, eni_id: &str) -> R<()> {
        let detail = format!("NetworkInterfaceId={eni_id} SourceDestCheck=false");
        let action = "ec2:ModifyNetworkInterfaceAttribute";
        self.change(action, detail, eni_id, (), || async {
            self.client
                .modify_network_interface_attribute()
                .network_interface_id(eni_id)
                .source_dest_check(AttributeBooleanValue::builder().value(false).build())
                .send()
                .await?;
            Ok(())
        })
        .await
    }

    pub async fn create_route(
        &self,
        route_table_id: &str,
        destination: &str,
        eni_id: &str,
    ) -> R<()> {
        let detail = format!("RouteTableId={route_table_id} DestinationCidrBlock={destination} NetworkInterfaceId={eni_id}");
        let resource = format!("{route_table_id} {destination}");
        self.change("ec2:CreateRoute", detail, resource, (), || async {
            self.client
                .create_route()
                .route_table_id(route_table_id)
                .destination_cidr_block(destination)
                .network_interface_id(eni_id)
                .send()
                .await?;
            Ok(())
        })
        .await
    }

    /// Only for routes this link owns (recorded in its state), pointed at a replaced tunnel host.
    pub async fn replace_route(
        &self,
        route_table_id: &str,
        destination: &str,
        eni_id: &str,
    ) -> R<()> {
        let detail = format!("RouteTableId={route_table_id} DestinationCidrBlock={destination} NetworkInterfaceId={eni_id}");
        let resource = format!("{route_table_id} {destination}");
        self.change("ec2:ReplaceRoute", detail, resource, (), || async {
            self.client
                .replace_route()
                .route_table_id(route_table_id)
                .destination_cidr_block(destination)
                .network_interface_id(eni_id)
                .send()
                .await?;
            Ok(())
        })
        .await
    }

    pub async fn delete_route(&self, route_table_id: &str, destination: &str) -> R<()> {
        let detail = format!("RouteTableId={route_table_id} DestinationCidrBlock={destination}");
        let resource = format!("{route_table_id} {destination}");
        self.change("ec2:DeleteRoute", detail, resource, (), || async {
            self.client
                .delete_route()
                .route_table_id(route_table_id)
                .destination_cidr_block(destination)
                .send()
                .await?;
            Ok(())
        })
        .await
    }

    /// Give a running instance an instance profile (a tunnel host launched before the link had one).
    pub async fn associate_iam_instance_profile(&self, instance_id: &str, profile: &str) -> R<()> {
        let detail = format!("InstanceId={instance_id} IamInstanceProfile.Name={profile}");
        let resource = format!("{instance_id} {profile}");
        let action = "ec2:AssociateIamInstanceProfile";
        self.change(action, detail, resource, (), || async {
            self.client
                .associate_iam_instance_profile()
                .instance_id(instance_id)
                .iam_instance_profile(
                    IamInstanceProfileSpecification::builder()
                        .name(profile)
                        .build(),
                )
                .send()
                .await?;
            Ok(())
        })
        .await
    }
}
