//! Tunnel MTU from first principles, so the DF probe in verify tests a number with a derivation.

/// EC2 caps traffic through an internet gateway at 1500 bytes.
pub const PATH_MTU: u16 = 1500;

/// ESP proposals configure allows (see libreswan.rs) and their per-packet cost: IV, ICV, cipher block for padding.
struct Esp {
    iv: u16,
    icv: u16,
    block: u16,
}
/// Only AES-GCM is offered: AEAD, in every target kernel, and 16 bytes cheaper per packet than CBC with HMAC.
const ALLOWED_ESP: [Esp; 1] = [
    // aes_gcm256: 8-byte IV, 16-byte ICV, 4-byte alignment
    Esp {
        iv: 8,
        icv: 16,
        block: 4,
    },
];

const OUTER_IP: u16 = 20;
const NAT_T_UDP: u16 = 8; // EC2 always NATs, so ESP always rides in UDP 4500
const ESP_HDR: u16 = 8;
const ESP_TRAILER: u16 = 2;
const TUNNEL_IP: u16 = 20; // ESP tunnel mode: the GRE packet inside keeps its own IP header
const GRE_HDR: u16 = 4;

/// The largest IP packet that fits the GRE device for every allowed proposal, rounded down to a multiple of 8.
pub fn gre_mtu(path_mtu: u16) -> u16 {
    let fit = ALLOWED_ESP
        .iter()
        .map(|e| {
            // Largest inner size X with: outer + esp hdr + iv + pad(X + tunnel + gre + trailer) + icv <= path
            let room = path_mtu - OUTER_IP - NAT_T_UDP - ESP_HDR - e.iv - e.icv;
            let padded = room / e.block * e.block;
            padded - ESP_TRAILER - TUNNEL_IP - GRE_HDR
        })
        .min()
        .expect("at least one proposal");
    fit / 8 * 8
}

/// The largest ICMP echo payload a DF ping can carry through the tunnel.
pub fn max_ping_payload(mtu: u16) -> u16 {
    mtu - 28
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_path_gives_1408() {
        // By hand: outer IP 20 + UDP 8 + ESP 8 + IV 8 + (1408 + 20 + 4 + 2 = 1434, padded to 1436) + ICV 16 = 1496.
        // 1416 would need 1504.
        assert_eq!(gre_mtu(1500), 1408);
        assert_eq!(max_ping_payload(1408), 1380);
    }

    #[test]
    fn every_allowed_proposal_fits() {
        for path in [1280u16, 1400, 1500, 9001] {
            let x = gre_mtu(path);
            for e in &ALLOWED_ESP {
                let payload = x + TUNNEL_IP + GRE_HDR + ESP_TRAILER;
                let padded = payload.div_ceil(e.block) * e.block;
                let wire = OUTER_IP + NAT_T_UDP + ESP_HDR + e.iv + padded + e.icv;
                assert!(
                    wire <= path,
                    "path {path}: mtu {x} makes {wire}-byte packets"
                );
            }
        }
    }
}
