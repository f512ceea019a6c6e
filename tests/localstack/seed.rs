//! Two VPCs on LocalStack shaped like the ones vpclink must handle (see localstack/seed.py for the same in Python):
//! each side in its own fresh account and its own region, 10.0.0.0/16 on both, an internet gateway, a public subnet,
//! two private subnets with their own route tables, and a secondary CIDR on east. Knobs make the bad cases.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

#[derive(Debug, Clone)]
pub struct SeedSpec {
    pub east_cidr: &'static str,
    pub west_cidr: &'static str,
    pub east_secondary: Option<&'static str>,
    /// false: east has an internet gateway but no subnet routes 0.0.0.0/0 to it.
    pub east_public: bool,
    /// Extra routes (destination -> the internet gateway) in east's main table.
    pub east_extra_routes: Vec<&'static str>,
    /// Both VPCs in one account and one region (east's): two VPCs of one team.
    pub one_account: bool,
}

impl Default for SeedSpec {
    fn default() -> Self {
        SeedSpec {
            east_cidr: "10.0.0.0/16",
            west_cidr: "10.0.0.0/16",
            east_secondary: Some("10.5.0.0/16"),
            east_public: true,
            east_extra_routes: Vec::new(),
            one_account: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SideSeed {
    pub account: String,
    pub region: String,
    pub vpc_id: String,
    pub igw: String,
    pub public_subnet: Option<String>,
    pub private_subnets: Vec<String>,
    pub route_tables: Vec<String>,
    pub main_table: String,
}

#[derive(Debug, Clone)]
pub struct Seed {
    pub east: SideSeed,
    pub west: SideSeed,
}

fn named(resource: ResourceType, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .tags(Tag::builder().key("Name").value(name).build())
        .build()
}

async fn seed_side(
    url: &str,
    account: String,
    region: &str,
    cidr: &str,
    secondary: Option<&str>,
    public: bool,
    extra_routes: &[&str],
) -> SideSeed {
    let ec2 = super::ec2(url, &account, region);
    let vpc = ec2
        .create_vpc()
        .cidr_block(cidr)
        .tag_specifications(named(ResourceType::Vpc, "seed"))
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    // As a VPC that resolves private hosted zones must be (CreateVpc leaves DNS host names off); the names module
    // warns about one that is not, tested on plain data in src/names/sync.rs.
    ec2.modify_vpc_attribute()
        .vpc_id(&vpc)
        .enable_dns_hostnames(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    if let Some(s) = secondary {
        ec2.associate_vpc_cidr_block()
            .vpc_id(&vpc)
            .cidr_block(s)
            .send()
            .await
            .unwrap();
    }
    let igw = ec2
        .create_internet_gateway()
        .send()
        .await
        .unwrap()
        .internet_gateway
        .unwrap()
        .internet_gateway_id
        .unwrap();
    ec2.attach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    let main_table = ec2
        .describe_route_tables()
        .filters(super::filter("vpc-id", &vpc))
        .filters(super::filter("association.main", "true"))
        .send()
        .await
        .unwrap()
        .route_tables()[0]
        .route_table_id()
        .unwrap()
        .to_string();
    for d in extra_routes {
        ec2.create_route()
            .route_table_id(&main_table)
            .destination_cidr_block(*d)
            .gateway_id(&igw)
            .send()
            .await
            .unwrap();
    }
    let base: Vec<u8> = cidr
        .split('/')
        .next()
        .unwrap()
        .split('.')
        .map(|o| o.parse().unwrap())
        .collect();
    let net = |third: u8| format!("{}.{}.{third}.0/24", base[0], base[1]);
    let mut subnets = vec![
        ("public", net(1), public),
        ("private-a", net(2), false),
        ("private-b", net(3), false),
    ];
    if let Some(s) = secondary {
        let b: Vec<&str> = s.split('.').collect();
        subnets.push(("secondary", format!("{}.{}.1.0/24", b[0], b[1]), false));
    }
    let mut out = SideSeed {
        account: account.clone(),
        region: region.into(),
        vpc_id: vpc.clone(),
        igw: igw.clone(),
        public_subnet: None,
        private_subnets: Vec::new(),
        route_tables: vec![main_table.clone()],
        main_table,
    };
    for (name, cidr, is_public) in subnets {
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(&cidr)
            .availability_zone(format!("{region}a"))
            .tag_specifications(named(ResourceType::Subnet, name))
            .send()
            .await
            .unwrap()
            .subnet
            .unwrap()
            .subnet_id
            .unwrap();
        let rt = ec2
            .create_route_table()
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap()
            .route_table
            .unwrap()
            .route_table_id
            .unwrap();
        ec2.associate_route_table()
            .route_table_id(&rt)
            .subnet_id(&subnet)
            .send()
            .await
            .unwrap();
        if is_public {
            ec2.create_route()
                .route_table_id(&rt)
                .destination_cidr_block("0.0.0.0/0")
                .gateway_id(&igw)
                .send()
                .await
                .unwrap();
            out.public_subnet = Some(subnet);
        } else {
            out.private_subnets.push(subnet);
        }
        out.route_tables.push(rt);
    }
    out
}

pub async fn seed(url: &str, spec: &SeedSpec) -> Seed {
    let east_account = super::fresh_account();
    let (west_account, west_region) = if spec.one_account {
        (east_account.clone(), "us-east-1")
    } else {
        (super::fresh_account(), "us-west-2")
    };
    let (east, west) = tokio::join!(
        seed_side(
            url,
            east_account,
            "us-east-1",
            spec.east_cidr,
            spec.east_secondary,
            spec.east_public,
            &spec.east_extra_routes
        ),
        seed_side(
            url,
            west_account,
            west_region,
            spec.west_cidr,
            None,
            true,
            &[]
        )
    );
    Seed { east, west }
}
