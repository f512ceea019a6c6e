//! A thin wrapper over the IAM client: one method per API call, each returning [`AwsError`] with the side, profile,
//! IAM action and resource. Changes are recorded instead of made under `--dry-run` (reads still go to AWS).
//!
//! IAM is global (one per account, not per region) and eventually consistent: "Changes that I make are not always
//! immediately visible" (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency);
//! AddRoleToInstanceProfile's reference says the same of a profile's role
//! (https://docs.aws.amazon.com/IAM/latest/APIReference/API_AddRoleToInstanceProfile.html).

use super::caller::Caller;
use super::ec2::DryRunLog;
use super::error::AwsError;
use super::tags::LinkTags;
use crate::side::Side;
use aws_sdk_iam::types::{InstanceProfile, Role, Tag};
use aws_sdk_iam::Client;
use std::time::Duration;

type R<T> = Result<T, AwsError>;

/// The path every role and instance profile vpclink makes lives under: what a `down` without state lists.
pub const PATH: &str = "/vpclink/";

#[derive(Debug, Clone)]
pub struct Iam {
    client: Client,
    caller: Caller,
}

/// IAM's answer when the named role, profile or policy does not exist.
pub fn is_no_such_entity(e: &AwsError) -> bool {
    e.code() == "NoSuchEntity"
}

/// IAM's answer to a create whose name is taken (by an earlier run of this link, or by someone else).
pub fn is_already_exists(e: &AwsError) -> bool {
    e.code() == "EntityAlreadyExists"
}

fn gone_is_none<T>(r: R<T>) -> R<Option<T>> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(e) if is_no_such_entity(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The link's tags in IAM's own Tag type.
pub fn iam_tags(tags: &LinkTags) -> Vec<Tag> {
    tags.tags()
        .iter()
        .filter_map(|t| Tag::builder().key(t.key()?).value(t.value()?).build().ok())
        .collect()
}

/// Whether IAM tags say the resource is this link's, side's and role's.
pub fn tags_match(tags: &LinkTags, found: &[Tag]) -> bool {
    let as_ec2: Vec<aws_sdk_ec2::types::Tag> = found
        .iter()
        .map(|t| {
            aws_sdk_ec2::types::Tag::builder()
                .key(t.key())
                .value(t.value())
                .build()
        })
        .collect();
    tags.matches(&as_ec2)
}

impl Iam {
    pub fn new(client: Client, side: Side, profile: &str, dry: Option<DryRunLog>) -> Self {
        Iam {
            client,
            caller: Caller::new(side, profile, dry),
        }
    }

    pub fn is_dry_run(&self) -> bool {
        self.caller.is_dry_run()
    }

    /// The role's ARN; None under --dry-run.
    pub async fn create_role(
        &self,
        name: &str,
        trust_policy: &str,
        tags: &LinkTags,
    ) -> R<Option<String>> {
        let action = "iam:CreateRole";
        if self.caller.planned(
            action,
            format!("RoleName={name} Path={PATH} trust=ec2.amazonaws.com"),
        ) {
            return Ok(None);
        }
        let out = self
            .client
            .create_role()
            .role_name(name)
            .path(PATH)
            .assume_role_policy_document(trust_policy)
            .description("vpclink tunnel host: publishes the link's metrics to CloudWatch")
            .set_tags(Some(iam_tags(tags)))
            .send()
            .await
            .map_err(self.caller.err(action, name))?;
        Ok(out.role.map(|r| r.arn))
    }

    pub async fn get_role(&self, name: &str) -> R<Option<Role>> {
        let r = self.client.get_role().role_name(name).send().await;
        gone_is_none(r.map_err(self.caller.err("iam:GetRole", name)))
            .map(|o| o.and_then(|out| out.role))
    }

    pub async fn put_role_policy(&self, role: &str, policy: &str, document: &str) -> R<()> {
        let action = "iam:PutRolePolicy";
        if self.caller.planned(
            action,
            format!("RoleName={role} PolicyName={policy} {document}"),
        ) {
            return Ok(());
        }
        self.client
            .put_role_policy()
            .role_name(role)
            .policy_name(policy)
            .policy_document(document)
            .send()
            .await
            .map_err(self.caller.err(action, &format!("{role} {policy}")))?;
        Ok(())
    }

    /// The inline policy's document as IAM returns it (URL-encoded, RFC 3986); None when there is none.
    pub async fn get_role_policy(&self, role: &str, policy: &str) -> R<Option<String>> {
        let r = self
            .client
            .get_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await;
        gone_is_none(
            r.map_err(
                self.caller
                    .err("iam:GetRolePolicy", &format!("{role} {policy}")),
            ),
        )
        .map(|o| o.map(|out| out.policy_document))
    }

    pub async fn delete_role_policy(&self, role: &str, policy: &str) -> R<()> {
        let action = "iam:DeleteRolePolicy";
        if self
            .caller
            .planned(action, format!("RoleName={role} PolicyName={policy}"))
        {
            return Ok(());
        }
        self.client
            .delete_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
            .map_err(self.caller.err(action, &format!("{role} {policy}")))?;
        Ok(())
    }

    pub async fn delete_role(&self, name: &str) -> R<()> {
        let action = "iam:DeleteRole";
        if self.caller.planned(action, format!("RoleName={name}")) {
            return Ok(());
        }
        self.client
            .delete_role()
            .role_name(name)
            .send()
            .await
            .map_err(self.caller.err(action, name))?;
        Ok(())
    }

    /// The instance profile's ARN; None under --dry-run.
    pub async fn create_instance_profile(&self, name: &str, tags: &LinkTags) -> R<Option<String>> {
        let action = "iam:CreateInstanceProfile";
        if self
            .caller
            .planned(action, format!("InstanceProfileName={name} Path={PATH}"))
        {
            return Ok(None);
        }
        let out = self
            .client
            .create_instance_profile()
            .instance_profile_name(name)
            .path(PATH)
            .set_tags(Some(iam_tags(tags)))
            .send()
            .await
            .map_err(self.caller.err(action, name))?;
        Ok(out.instance_profile.map(|p| p.arn))
    }

    pub async fn get_instance_profile(&self, name: &str) -> R<Option<InstanceProfile>> {
        let r = self
            .client
            .get_instance_profile()
            .instance_profile_name(name)
            .send()
            .await;
        gone_is_none(r.map_err(self.caller.err("iam:GetInstanceProfile", name)))
            .map(|o| o.and_then(|out| out.instance_profile))
    }

    /// Poll GetInstanceProfile until IAM answers for it (the SDK's `instance_profile_exists` waiter), at most `wait`.
    pub async fn wait_instance_profile_exists(&self, name: &str, wait: Duration) -> R<()> {
        use aws_sdk_iam::client::Waiters;
        if self.caller.dry.is_some() {
            return Ok(());
        }
        self.client
            .wait_until_instance_profile_exists()
            .instance_profile_name(name)
            .wait(wait)
            .await
            .map_err(|e| {
                self.caller.error(
                    "iam:GetInstanceProfile",
                    name,
                    None,
                    format!("instance profile not visible after {wait:?}: {e}"),
                )
            })?;
        Ok(())
    }

    pub async fn add_role_to_instance_profile(&self, profile: &str, role: &str) -> R<()> {
        let action = "iam:AddRoleToInstanceProfile";
        if self.caller.planned(
            action,
            format!("InstanceProfileName={profile} RoleName={role}"),
        ) {
            return Ok(());
        }
        self.client
            .add_role_to_instance_profile()
            .instance_profile_name(profile)
            .role_name(role)
            .send()
            .await
            .map_err(self.caller.err(action, &format!("{profile} {role}")))?;
        Ok(())
    }

    pub async fn remove_role_from_instance_profile(&self, profile: &str, role: &str) -> R<()> {
        let action = "iam:RemoveRoleFromInstanceProfile";
        if self.caller.planned(
            action,
            format!("InstanceProfileName={profile} RoleName={role}"),
        ) {
            return Ok(());
        }
        self.client
            .remove_role_from_instance_profile()
            .instance_profile_name(profile)
            .role_name(role)
            .send()
            .await
            .map_err(self.caller.err(action, &format!("{profile} {role}")))?;
        Ok(())
    }

    pub async fn delete_instance_profile(&self, name: &str) -> R<()> {
        let action = "iam:DeleteInstanceProfile";
        if self
            .caller
            .planned(action, format!("InstanceProfileName={name}"))
        {
            return Ok(());
        }
        self.client
            .delete_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
            .map_err(self.caller.err(action, name))?;
        Ok(())
    }

    /// Every instance profile under `path` (ListInstanceProfiles returns no tags: GetInstanceProfile has them).
    pub async fn list_instance_profiles(&self, path: &str) -> R<Vec<InstanceProfile>> {
        self.client
            .list_instance_profiles()
            .path_prefix(path)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.caller.err("iam:ListInstanceProfiles", path))
    }

    /// Every role under `path` (ListRoles returns no tags: GetRole has them).
    pub async fn list_roles(&self, path: &str) -> R<Vec<Role>> {
        self.client
            .list_roles()
            .path_prefix(path)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.caller.err("iam:ListRoles", path))
    }
}

/// Decode a URL-encoded (RFC 3986) policy document, as GetRolePolicy returns it. Text that is not encoded comes
/// back unchanged unless it holds a `%` followed by two hex digits.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_documents_decode_as_iam_returns_them() {
        assert_eq!(
            url_decode("%7B%22Version%22%3A%222012-10-17%22%7D"),
            "{\"Version\":\"2012-10-17\"}"
        );
        assert_eq!(url_decode("{\"a\": \"b c\"}"), "{\"a\": \"b c\"}");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz"), "%zz");
    }

    #[test]
    fn tags_match_only_this_link_side_and_role() {
        let ours = LinkTags::new("l", Side::East, "host");
        assert!(tags_match(&ours, &iam_tags(&ours)));
        let other = LinkTags::new("l2", Side::East, "host");
        assert!(!tags_match(&ours, &iam_tags(&other)));
        assert!(!tags_match(&ours, &[]));
    }
}
