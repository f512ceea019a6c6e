//! Reads: describe calls, paginated to the end.

use super::{is_placeholder, not_found_is_none, Ec2, R};
use aws_sdk_ec2::types::{
    AccountAttributeName, Address, Filter, Image, Instance, KeyPairInfo, NetworkInterface,
    RouteTable, SecurityGroup, SecurityGroupRule, Subnet, Vpc,
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

    /// The instance's serial console text (cloud-init prints the SSH host keys there), decoded; None while the
    /// instance has printed nothing yet.
    pub async fn console_output(&self, instance_id: &str) -> R<Option<String>> {
        if is_placeholder(instance_id) {
            return Ok(None);
        }
        let out = match self
            .client
            .get_console_output()
            .instance_id(instance_id)
            .latest(true)
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
}
