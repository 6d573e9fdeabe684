//! Host-level bin-packing for on-prem pools, indexed so that a placement never scans every host.
//!
//! * first-fit: a segment tree over hosts holding the largest free vCPU and free memory of each
//!   subtree; the search descends to the leftmost host that fits, pruning every subtree whose
//!   maxima are too small. Typically O(log n) per query.
//! * best-fit / worst-fit: an ordered set keyed by (free vCPU, free memory, host), queried from the
//!   smallest fitting key upwards (best) or from the largest downwards (worst).

use std::collections::BTreeSet;

use crate::model::{Fit, HostId, Resources};

/// The free capacity of every host of a pool, with indices for each fit.
#[derive(Clone, Debug)]
pub struct HostPool {
    host: Resources,
    free_cpu: Vec<u32>,
    free_mem: Vec<u64>,
    free_gpu: Vec<u32>,
    // Segment tree (1-based, size 2 * leaves) of (max free cpu, max free mem) per subtree.
    leaves: usize,
    tree_cpu: Vec<u32>,
    tree_mem: Vec<u64>,
    // Ordered by free capacity, for best-fit and worst-fit; built on first use.
    ordered: Option<BTreeSet<(u32, u64, u32)>>,
    used_vcpu: u64,
    used_mem: u64,
}

impl HostPool {
    /// A pool of `hosts` empty hosts of capacity `host`.
    pub fn new(hosts: u32, host: Resources) -> Self {
        let n = hosts as usize;
        let leaves = n.next_power_of_two().max(1);
        let mut tree_cpu = vec![0; 2 * leaves];
        let mut tree_mem = vec![0; 2 * leaves];
        for i in 0..n {
            tree_cpu[leaves + i] = host.vcpu;
            tree_mem[leaves + i] = host.memory_mib;
        }
        for i in (1..leaves).rev() {
            tree_cpu[i] = tree_cpu[2 * i].max(tree_cpu[2 * i + 1]);
            tree_mem[i] = tree_mem[2 * i].max(tree_mem[2 * i + 1]);
        }
        HostPool {
            host,
            free_cpu: vec![host.vcpu; n],
            free_mem: vec![host.memory_mib; n],
            free_gpu: vec![host.gpu; n],
            leaves,
            tree_cpu,
            tree_mem,
            ordered: None,
            used_vcpu: 0,
            used_mem: 0,
        }
    }

    /// Number of hosts.
    pub fn len(&self) -> usize {
        self.free_cpu.len()
    }
    /// Whether the pool has no hosts.
    pub fn is_empty(&self) -> bool {
        self.free_cpu.is_empty()
    }
    /// Capacity of one host.
    pub fn host_capacity(&self) -> Resources {
        self.host
    }
    /// Free resources of a host.
    pub fn free(&self, h: HostId) -> Resources {
        let i = h.idx();
        Resources { vcpu: self.free_cpu[i], memory_mib: self.free_mem[i], gpu: self.free_gpu[i] }
    }
    /// vCPU and MiB in use across the pool.
    pub fn used(&self) -> (u64, u64) {
        (self.used_vcpu, self.used_mem)
    }

    /// The host `fit` would choose for `req`, or `None` if no host has room.
    /// Takes `&mut self` only to build the ordered index lazily; it does not allocate resources.
    pub fn find(&mut self, fit: Fit, req: &Resources) -> Option<HostId> {
        match fit {
            Fit::FirstFit => self.first_fit(req),
            Fit::BestFit | Fit::WorstFit => {
                self.ensure_ordered();
                self.find_ordered(fit, req)
            }
        }
    }

    /// Like [`HostPool::find`] for callers holding a shared reference: first-fit always works;
    /// best- and worst-fit need the index, built by [`HostPool::prepare`].
    pub fn find_shared(&self, fit: Fit, req: &Resources) -> Option<HostId> {
        match fit {
            Fit::FirstFit => self.first_fit(req),
            _ if self.ordered.is_some() => self.find_ordered(fit, req),
            // Without the index, fall back to an exact scan (same answer, slower).
            _ => self.scan(fit, req),
        }
    }

    /// Builds the index `fit` needs, so that later shared look-ups are fast.
    pub fn prepare(&mut self, fit: Fit) {
        if fit != Fit::FirstFit {
            self.ensure_ordered();
        }
    }

    fn ensure_ordered(&mut self) {
        if self.ordered.is_none() {
            let set = (0..self.len()).map(|i| (self.free_cpu[i], self.free_mem[i], i as u32)).collect();
            self.ordered = Some(set);
        }
    }

    fn fits(&self, i: usize, req: &Resources) -> bool {
        self.free_cpu[i] >= req.vcpu && self.free_mem[i] >= req.memory_mib && self.free_gpu[i] >= req.gpu
    }

    fn first_fit(&self, req: &Resources) -> Option<HostId> {
        if self.is_empty() {
            return None;
        }
        // Iterative depth-first search, left child first, pruning on the subtree maxima.
        let mut stack = [0usize; 64];
        let mut top = 0;
        stack[top] = 1;
        top += 1;
        while top > 0 {
            top -= 1;
            let node = stack[top];
            if self.tree_cpu[node] < req.vcpu || self.tree_mem[node] < req.memory_mib {
                continue;
            }
            if node >= self.leaves {
                let i = node - self.leaves;
                if i < self.len() && self.fits(i, req) {
                    return Some(HostId(i as u32));
                }
                continue;
            }
            stack[top] = 2 * node + 1;
            stack[top + 1] = 2 * node;
            top += 2;
        }
        None
    }

    fn find_ordered(&self, fit: Fit, req: &Resources) -> Option<HostId> {
        let set = self.ordered.as_ref()?;
        let from = (req.vcpu, 0u64, 0u32);
        let pick = |&(_, _, h): &(u32, u64, u32)| self.fits(h as usize, req).then_some(HostId(h));
        match fit {
            Fit::BestFit => set.range(from..).find_map(pick),
            _ => set.range(from..).rev().find_map(pick),
        }
    }

    fn scan(&self, fit: Fit, req: &Resources) -> Option<HostId> {
        let key = |i: usize| (self.free_cpu[i], self.free_mem[i], i as u32);
        let fitting = (0..self.len()).filter(|&i| self.fits(i, req));
        let best = match fit {
            Fit::BestFit => fitting.min_by_key(|&i| key(i)),
            Fit::WorstFit => fitting.max_by_key(|&i| key(i)),
            Fit::FirstFit => fitting.min(),
        };
        best.map(|i| HostId(i as u32))
    }

    /// Takes `req` from host `h`. Returns `false` (and changes nothing) if it does not fit.
    pub fn allocate(&mut self, h: HostId, req: &Resources) -> bool {
        let i = h.idx();
        if i >= self.len() || !self.fits(i, req) {
            return false;
        }
        self.set_free(i, self.free_cpu[i] - req.vcpu, self.free_mem[i] - req.memory_mib);
        self.free_gpu[i] -= req.gpu;
        self.used_vcpu += req.vcpu as u64;
        self.used_mem += req.memory_mib;
        true
    }

    /// Gives `req` back to host `h` (never above the host's capacity).
    pub fn release(&mut self, h: HostId, req: &Resources) {
        let i = h.idx();
        if i >= self.len() {
            return;
        }
        let cpu = (self.free_cpu[i] + req.vcpu).min(self.host.vcpu);
        let mem = (self.free_mem[i] + req.memory_mib).min(self.host.memory_mib);
        self.set_free(i, cpu, mem);
        self.free_gpu[i] = (self.free_gpu[i] + req.gpu).min(self.host.gpu);
        self.used_vcpu = self.used_vcpu.saturating_sub(req.vcpu as u64);
        self.used_mem = self.used_mem.saturating_sub(req.memory_mib);
    }

    fn set_free(&mut self, i: usize, cpu: u32, mem: u64) {
        if let Some(set) = self.ordered.as_mut() {
            set.remove(&(self.free_cpu[i], self.free_mem[i], i as u32));
            set.insert((cpu, mem, i as u32));
        }
        self.free_cpu[i] = cpu;
        self.free_mem[i] = mem;
        let mut node = (self.leaves + i) / 2;
        self.tree_cpu[self.leaves + i] = cpu;
        self.tree_mem[self.leaves + i] = mem;
        while node >= 1 {
            self.tree_cpu[node] = self.tree_cpu[2 * node].max(self.tree_cpu[2 * node + 1]);
            self.tree_mem[node] = self.tree_mem[2 * node].max(self.tree_mem[2 * node + 1]);
            node /= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn res(vcpu: u32, memory_mib: u64) -> Resources {
        Resources { vcpu, memory_mib, gpu: 0 }
    }

    #[test]
    fn first_fit_takes_lowest_host_with_room() {
        let mut p = HostPool::new(3, res(4, 4096));
        assert_eq!(p.find(Fit::FirstFit, &res(3, 1024)), Some(HostId(0)));
        assert!(p.allocate(HostId(0), &res(3, 1024)));
        // Host 0 has 1 vCPU left: a 2-vCPU VM goes to host 1, a 1-vCPU VM still to host 0.
        assert_eq!(p.find(Fit::FirstFit, &res(2, 1024)), Some(HostId(1)));
        assert_eq!(p.find(Fit::FirstFit, &res(1, 1024)), Some(HostId(0)));
        // Too big for any host.
        assert_eq!(p.find(Fit::FirstFit, &res(5, 1024)), None);
    }

    #[test]
    fn first_fit_backtracks_when_maxima_come_from_different_hosts() {
        // Host 0: lots of CPU, no memory. Host 1: lots of memory, no CPU. Host 2: both.
        let mut p = HostPool::new(3, res(8, 8192));
        assert!(p.allocate(HostId(0), &res(0, 8000)));
        assert!(p.allocate(HostId(1), &res(7, 0)));
        assert_eq!(p.find(Fit::FirstFit, &res(2, 1024)), Some(HostId(2)));
    }

    #[test]
    fn best_and_worst_fit() {
        let mut p = HostPool::new(3, res(8, 8192));
        assert!(p.allocate(HostId(0), &res(6, 1024))); // 2 free
        assert!(p.allocate(HostId(1), &res(3, 1024))); // 5 free
        // Best fit for 2 vCPU: host 0 (2 free). Worst fit: host 2 (8 free).
        assert_eq!(p.find(Fit::BestFit, &res(2, 512)), Some(HostId(0)));
        assert_eq!(p.find(Fit::WorstFit, &res(2, 512)), Some(HostId(2)));
        // Best fit for 3 vCPU: host 1 (5 free).
        assert_eq!(p.find(Fit::BestFit, &res(3, 512)), Some(HostId(1)));
        p.release(HostId(0), &res(6, 1024));
        assert_eq!(p.find(Fit::BestFit, &res(3, 512)), Some(HostId(1)));
        assert_eq!(p.used(), (3, 1024));
    }

    proptest! {
        /// The indexed searches give the same host as an exhaustive scan, whatever came before.
        #[test]
        fn indexed_search_matches_scan(
            hosts in 1u32..40,
            ops in prop::collection::vec((0u8..3, 1u32..9, 1u64..5, any::<bool>()), 1..200),
        ) {
            let mut p = HostPool::new(hosts, res(16, 4096));
            let mut live: Vec<(HostId, Resources)> = Vec::new();
            for (fit, cpu, mem, release) in ops {
                let fit = [Fit::FirstFit, Fit::BestFit, Fit::WorstFit][fit as usize];
                let r = res(cpu, mem * 512);
                if release && !live.is_empty() {
                    let (h, r) = live.remove((cpu as usize) % live.len());
                    p.release(h, &r);
                    continue;
                }
                let scanned = p.scan(fit, &r);
                let found = p.find(fit, &r);
                prop_assert_eq!(found, scanned);
                if let Some(h) = found {
                    prop_assert!(p.allocate(h, &r));
                    live.push((h, r));
                }
            }
        }
    }
}
