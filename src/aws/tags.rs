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
        let routes = (!self.routes.is_empty()).then(|| (ROUTES, route_list(&self.routes)));
        [
            ("Name", self.name()),
            (LINK, self.link.clone()),
            (SIDE, self.side.to_string()),
            (ROLE, self.role.to_string()),
        ]
        .into_iter()
        .chain(routes)
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

fn route_list(routes: &[Ipv4Net]) -> String {
    let list: Vec<String> = routes.iter().map(|r| r.to_string()).collect();
    list.join(" ")
}

/// The destinations a [`ROUTES`] tag names (what does not parse is ignored: the tag is ours, but tags can be edited).
pub fn routes_of(tags: &[Tag]) -> Vec<Ipv4Net> {
    tag_value(tags, ROUTES)
        .map(|v| {
            v.split_whitespace()
                .filter_map(|r| r.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}
