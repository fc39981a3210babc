//! The order in which a claim tries free blocks after losing a race.

/// Where a claim that lost a race tries next. The first claim of a quiet cluster takes
/// the first free block; but nodes that claim at once (a group of nodes joining, a
/// rollout) all read the same first free block, and if each loser tried the next one in
/// order they would race again there, block after block: n nodes would spend about
/// n²/2 claims. After each loss a node passes over a random number of free blocks,
/// from a window that doubles with every loss, so racing nodes spread out (what Calico
/// does with a block order seeded per host).
pub(super) struct Spread {
    state: u64,
    losses: u32,
    pass: u64,
    /// Whether a free block was passed over.
    pub(super) passed_any: bool,
}

/// Free blocks a claim may pass over after its first loss; doubled per loss.
const SPREAD: u64 = 16;

impl Spread {
    pub(super) fn new(node: &str) -> Spread {
        // FNV-1a of the name, mixed with the clock: nodes differ, and so do the
        // retries of one node.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in node.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
        Spread {
            state: h ^ nanos,
            losses: 0,
            pass: 0,
            passed_any: false,
        }
    }

    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A claim was lost: pass over some of the next free blocks.
    pub(super) fn lost(&mut self) {
        let window = SPREAD << self.losses.min(10);
        self.losses += 1;
        self.pass = self.next() % window;
    }

    /// Whether to pass over this free block.
    pub(super) fn passes(&mut self) -> bool {
        if self.pass == 0 {
            return false;
        }
        self.pass -= 1;
        self.passed_any = true;
        true
    }
}
