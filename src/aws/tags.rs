//! The tags every vpclink resource carries. They are how `down` finds a link without its state file, and how `up`
//! finds what it created before a crash kept it from recording it.

use crate::side::Side;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use ipnet::Ipv4Net;

pub const LINK: &str = "vpclink:link";
pub const SIDE: &str = "vpclink:side";
pub const ROLE: &str = "vpclink:role";
/// On the tunnel host's security group: the destinations of the link's routes on that side, space-separated.
pub const ROUTES: &str = "vpclink:routes";

/// Roles: what a resource is for within its side.
pub const ROLE_KEY: &str = "key";
pub const ROLE_TUNNEL: &str = "tunnel";
pub const ROLE_TEST: &str = "test";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTags {
    pub link: String,
    pub side: Side,
    pub role: &'static str,
    /// Written as [`ROUTES`] when not empty (the tunnel host's group: see [`LinkTags::with_routes`]).
    pub routes: Vec<Ipv4Net>,
}

impl LinkTags {
    pub fn new(link: &str, side: Side, role: &'static str) -> Self {
        LinkTags {
            link: link.to_string(),
            side,
            role,
            routes: Vec::new(),
        }
    }

    /// Also record the destinations of the routes the link adds on this side. The tunnel host's group carries them
    /// so that `down` without a state file can still find those routes once the host (their target) is gone and
    /// they are blackholes: nothing else says they were ours. The group is deleted only after the routes.
    pub fn with_routes(mut self, routes: &[Ipv4Net]) -> Self {
        self.routes = routes.to_vec();
        self
    }

    pub fn name(&self) -> String {
        format!("vpclink-{}-{}-{}", self.link, self.side, self.role)
    }

    pub fn tags(&self) -> Vec<Tag> {
        [
            ("Name".to_string(), self.name()),
            (LINK.to_string(), self.link.clone()),
            (SIDE.to_string(), self.side.to_string()),
            (ROLE.to_string(), self.role.to_string()),
        ]
        .into_iter()
        .chain(route_tags(&self.routes))
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
    }

    pub fn spec(&self, resource: ResourceType) -> TagSpecification {
        TagSpecification::builder()
            .resource_type(resource)
            .set_tags(Some(self.tags()))
            .build()
    }

    /// Whether a resource's tags say it is this link's, side's and role's (what [`Self::filters`] selects).
    pub fn matches(&self, tags: &[Tag]) -> bool {
        tag_value(tags, LINK) == Some(self.link.as_str())
            && tag_value(tags, SIDE) == Some(self.side.as_str())
            && tag_value(tags, ROLE) == Some(self.role)
    }

    /// Filters matching exactly this link, side and role.
    pub fn filters(&self) -> Vec<Filter> {
        let mut f = link_filters(&self.link, Some(self.side));
        f.push(tag_filter(ROLE, self.role));
        f
    }
}

pub fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

pub fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Everything of one link (on one side, when given).
pub fn link_filters(link: &str, side: Option<Side>) -> Vec<Filter> {
    let mut f = vec![tag_filter(LINK, link)];
    if let Some(s) = side {
        f.push(tag_filter(SIDE, s.as_str()));
    }
    f
}

/// The [`ROUTES`] tags naming `routes`: a tag value holds at most 256 characters, so a long list goes on in
/// `vpclink:routes:2`, `vpclink:routes:3`... (whole CIDRs, space-separated). None for no routes.
pub fn route_tags(routes: &[Ipv4Net]) -> Vec<(String, String)> {
    let mut values: Vec<String> = Vec::new();
    for r in routes.iter().map(|r| r.to_string()) {
        match values.last_mut() {
            Some(v) if v.len() + 1 + r.len() <= 256 => {
                v.push(' ');
                v.push_str(&r);
            }
            _ => values.push(r),
        }
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| match i {
            0 => (ROUTES.to_string(), v),
            n => (format!("{ROUTES}:{}", n + 1), v),
        })
        .collect()
}

/// The destinations the [`ROUTES`] tags name, in order (what does not parse is ignored: the tags are ours, but tags
/// can be edited).
pub fn routes_of(tags: &[Tag]) -> Vec<Ipv4Net> {
    let mut parts: Vec<(usize, &str)> = tags
        .iter()
        .filter_map(|t| {
            let n = match t.key()?.strip_prefix(ROUTES)? {
                "" => 1,
                rest => rest.strip_prefix(':')?.parse().ok()?,
            };
            Some((n, t.value()?))
        })
        .collect();
    parts.sort();
    parts
        .iter()
        .flat_map(|(_, v)| v.split_whitespace().filter_map(|r| r.parse().ok()))
        .collect()
}

pub fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_tags_stay_under_the_value_limit_and_read_back_in_order() {
        let routes: Vec<Ipv4Net> = (0..40u8)
            .map(|i| Ipv4Net::new(std::net::Ipv4Addr::new(100, 64 + i, 0, 0), 16).unwrap())
            .collect();
        let tags = route_tags(&routes);
        assert!(tags.len() > 1, "40 ranges need more than one tag");
        assert!(tags.iter().all(|(_, v)| v.len() <= 256));
        assert_eq!(tags[0].0, ROUTES);
        assert_eq!(tags[1].0, "vpclink:routes:2");
        let mut as_aws: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        as_aws.reverse(); // AWS returns tags in no particular order
        as_aws.push(
            Tag::builder()
                .key("vpclink:routesx")
                .value("10.0.0.0/8")
                .build(),
        );
        assert_eq!(routes_of(&as_aws), routes);
        assert!(route_tags(&[]).is_empty());
    }
}
