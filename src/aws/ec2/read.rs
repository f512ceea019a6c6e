//! Reads: describe calls, paginated to the end. Ids given to them are real ones (see [`super::Made::real`]).

use super::{not_found_is_none, Ec2, R};
use aws_sdk_ec2::types::{
    AccountAttributeName, Address, Filter, Image, Instance, KeyPairInfo, NetworkInterface,
    RouteTable, SecurityGroup, SecurityGroupRule, Subnet, Vpc, VpcAttributeName,
};

impl Ec2 {
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

    /// (enableDnsSupport, enableDnsHostnames) of a VPC: Route 53 answers a private hosted zone in a VPC only when
    /// both are true ("To use private hosted zones, you must set the following Amazon VPC settings to true:
    /// enableDnsHostnames, enableDnsSupport", Route 53 developer guide, "Working with private hosted zones",
    /// https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/hosted-zone-private-considerations.html). A VPC
    /// made by hand or by CreateVpc has enableDnsHostnames false by default. DescribeVpcAttribute takes one
    /// attribute a call.
    pub async fn vpc_dns_attributes(&self, vpc_id: &str) -> R<(bool, bool)> {
        let ask = |attribute: VpcAttributeName| {
            self.client
                .describe_vpc_attribute()
                .vpc_id(vpc_id)
                .attribute(attribute)
                .send()
        };
        let (support, hostnames) = futures_util::future::join(
            ask(VpcAttributeName::EnableDnsSupport),
            ask(VpcAttributeName::EnableDnsHostnames),
        )
        .await;
        let support = support.map_err(self.err("ec2:DescribeVpcAttribute", vpc_id))?;
        let hostnames = hostnames.map_err(self.err("ec2:DescribeVpcAttribute", vpc_id))?;
        Ok((
            support
                .enable_dns_support
                .and_then(|v| v.value)
                .unwrap_or(false),
            hostnames
                .enable_dns_hostnames
                .and_then(|v| v.value)
                .unwrap_or(false),
        ))
    }

    pub async fn describe_subnets(&self, vpc_id: &str) -> R<Vec<Subnet>> {
        self.client
            .describe_subnets()
            .filters(crate::aws::tags::filter("vpc-id", vpc_id))
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
            .filters(crate::aws::tags::filter("vpc-id", vpc_id))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.err("ec2:DescribeRouteTables", vpc_id))
    }

    /// (prefix list id, maximum entries) of the named managed prefix lists.
    pub async fn describe_prefix_lists(&self, ids: &[String]) -> R<Vec<(String, usize)>> {
        let lists: Vec<_> = self
            .client
            .describe_managed_prefix_lists()
            .set_prefix_list_ids(Some(ids.to_vec()))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.err("ec2:DescribeManagedPrefixLists", ids.join(" ")))?;
        Ok(lists
            .iter()
            .filter_map(|l| {
                Some((
                    l.prefix_list_id()?.to_string(),
                    l.max_entries().unwrap_or(0).max(0) as usize,
                ))
            })
            .collect())
    }

    /// The CIDRs of one managed prefix list (AWS-managed lists included), as text: IPv4 or IPv6.
    pub async fn prefix_list_entries(&self, id: &str) -> R<Vec<String>> {
        let entries: Vec<_> = self
            .client
            .get_managed_prefix_list_entries()
            .prefix_list_id(id)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.err("ec2:GetManagedPrefixListEntries", id))?;
        Ok(entries
            .iter()
            .filter_map(|e| e.cidr().map(str::to_string))
            .collect())
    }

    /// The CPU architectures an instance type supports (x86_64, arm64, ...), from DescribeInstanceTypes rather than
    /// from the type's name.
    pub async fn instance_type_architectures(&self, instance_type: &str) -> R<Vec<String>> {
        let out = self
            .client
            .describe_instance_types()
            .instance_types(aws_sdk_ec2::types::InstanceType::from(instance_type))
            .send()
            .await
            .map_err(self.err("ec2:DescribeInstanceTypes", instance_type))?;
        Ok(out
            .instance_types()
            .iter()
            .filter_map(|t| t.processor_info())
            .flat_map(|p| p.supported_architectures())
            .map(|a| a.as_str().to_string())
            .collect())
    }

    /// The availability zones (names) of this region where the instance type is offered. Not every type is offered
    /// in every zone (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypeOfferings.html).
    pub async fn instance_type_zones(
        &self,
        instance_type: &str,
    ) -> R<std::collections::BTreeSet<String>> {
        let offerings: Vec<_> = self
            .client
            .describe_instance_type_offerings()
            .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZone)
            .filters(crate::aws::tags::filter("instance-type", instance_type))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.err("ec2:DescribeInstanceTypeOfferings", instance_type))?;
        Ok(offerings
            .iter()
            .filter_map(|o| o.location().map(str::to_string))
            .collect())
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
        self.client
            .describe_security_group_rules()
            .filters(crate::aws::tags::filter("group-id", group_id))
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

    /// Every network interface of a VPC (instances', and those managed services made: RDS, load balancers,
    /// endpoints...), paginated to the end: the names the other side's zone holds.
    pub async fn describe_vpc_network_interfaces(&self, vpc_id: &str) -> R<Vec<NetworkInterface>> {
        self.client
            .describe_network_interfaces()
            .filters(crate::aws::tags::filter("vpc-id", vpc_id))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.err("ec2:DescribeNetworkInterfaces", vpc_id))
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

    /// The instance's serial console text (cloud-init prints the SSH host keys there), decoded; None while the
    /// instance has printed nothing yet. `latest` asks for the live console rather than the buffered copy posted at
    /// state transitions; "This option is supported on instance types that use the Nitro hypervisor" (EC2 API
    /// reference, GetConsoleOutput: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetConsoleOutput.html),
    /// so the caller asks again without it when it is refused (provision::host_keys).
    pub async fn console_output(&self, instance_id: &str, latest: bool) -> R<Option<String>> {
        let out = match self
            .client
            .get_console_output()
            .instance_id(instance_id)
            .set_latest(latest.then_some(true))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => return not_found_is_none(self.err("ec2:GetConsoleOutput", instance_id)(e)),
        };
        use base64::Engine;
        Ok(out
            .output
            .and_then(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()
            })
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The instance's instance-profile associations (any state).
    pub async fn describe_iam_instance_profile_associations(
        &self,
        instance_id: &str,
    ) -> R<Vec<aws_sdk_ec2::types::IamInstanceProfileAssociation>> {
        self.client
            .describe_iam_instance_profile_associations()
            .filters(crate::aws::tags::filter("instance-id", instance_id))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.err("ec2:DescribeIamInstanceProfileAssociations", instance_id))
    }
}
