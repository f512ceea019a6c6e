//! A run from another machine imported the link's key pair first (same name, another public key): `up` refuses,
//! exit 1, naming the key pair, the region and what to do, and leaves that key pair as it was. Never adopted,
//! never replaced: replacing it would cut the other machine out of its own hosts.

mod localstack;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use localstack::{filter, stderr, SeedSpec, World};
use ssh_key::{Algorithm, PrivateKey};

#[tokio::test(flavor = "multi_thread")]
async fn up_refuses_a_key_pair_another_machine_imported() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let key_name = format!("vpclink-{}", w.name);
    let other = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519)
        .unwrap()
        .public_key()
        .to_openssh()
        .unwrap();
    // The other machine's vpclink tagged it as the link's, as ours would.
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::KeyPair)
        .tags(Tag::builder().key("vpclink:link").value(&w.name).build())
        .tags(Tag::builder().key("vpclink:side").value("west").build())
        .tags(Tag::builder().key("vpclink:role").value("key").build())
        .build();
    // The strict layer throttles a few percent of calls: retry as vpclink does.
    let west = aws_sdk_ec2::Client::from_conf(
        w.client("west")
            .config()
            .to_builder()
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::standard().with_max_attempts(8))
            .build(),
    );
    let imported = west
        .import_key_pair()
        .key_name(&key_name)
        .public_key_material(aws_sdk_ec2::primitives::Blob::new(other.as_bytes()))
        .tag_specifications(tags)
        .send()
        .await
        .unwrap();
    let id = imported.key_pair_id().unwrap().to_string();
    tokio::time::sleep(localstack::settle()).await;

    let up = w.up(&[]);
    let err = stderr(&up);
    assert_eq!(up.status.code(), Some(2), "refused by preflight: {err}");
    assert!(err.contains("nothing was created"), "{err}");
    for says in [
        key_name.as_str(),
        w.side("west").region.as_str(),
        "another public key",
        "vpclink down",
        "--name",
    ] {
        assert!(err.contains(says), "the refusal says {says:?}: {err}");
    }

    let found = west
        .describe_key_pairs()
        .filters(filter("key-name", &key_name))
        .include_public_key(true)
        .send()
        .await
        .unwrap();
    let kp = found.key_pairs();
    assert_eq!(kp.len(), 1, "the other machine's key pair is still there");
    assert_eq!(kp[0].key_pair_id(), Some(id.as_str()), "not re-imported");
    let body = |k: &str| k.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    if let Some(k) = kp[0].public_key() {
        assert_eq!(body(k), body(&other), "it holds the other machine's key");
    }

    // Clean up: the other machine's key pair, then what this run made before it stopped.
    west.delete_key_pair()
        .key_pair_id(&id)
        .send()
        .await
        .unwrap();
    // Best effort (the accounts are this test's own): what this run made before it stopped.
    let _ = w.down();
}
