//! The machine's budget: CPU slots and a GPU inventory, and their bookkeeping while tasks run.

use std::process::Command;

/// Where the GPU inventory comes from, in order: `--gpus`, `CUDA_VISIBLE_DEVICES`, `nvidia-smi -L`.
pub fn gpu_inventory(flag: Option<&str>) -> Vec<String> {
    let parse = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty() && *d != "none" && *d != "-1")
            .map(str::to_string)
            .collect()
    };
    if let Some(f) = flag {
        return parse(f);
    }
    if let Ok(v) = std::env::var("CUDA_VISIBLE_DEVICES") {
        return parse(&v);
    }
    let Ok(out) = Command::new("nvidia-smi").arg("-L").output() else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("GPU "))
        .enumerate()
        .map(|(i, _)| i.to_string())
        .collect()
}

/// Free CPU slots and GPUs while the dispatcher runs. A device is never handed to two tasks.
#[derive(Debug)]
pub struct Budget {
    pub cpus_total: u32,
    cpus_free: u32,
    gpus_free: Vec<String>,
    pub gpus_total: usize,
}

impl Budget {
    pub fn new(cpus: u32, gpus: Vec<String>) -> Budget {
        Budget {
            cpus_total: cpus,
            cpus_free: cpus,
            gpus_total: gpus.len(),
            gpus_free: gpus,
        }
    }

    /// CPU slots a task asking for `cpus` gets: never more than the machine's budget.
    pub fn clamp_cpus(&self, cpus: u32) -> u32 {
        cpus.clamp(1, self.cpus_total.max(1))
    }

    /// Takes the resources if they are free now.
    pub fn try_take(&mut self, cpus: u32, gpus: u32) -> Option<Vec<String>> {
        let cpus = self.clamp_cpus(cpus);
        if cpus > self.cpus_free || gpus as usize > self.gpus_free.len() {
            return None;
        }
        self.cpus_free -= cpus;
        Some(self.gpus_free.drain(..gpus as usize).collect())
    }

    pub fn give_back(&mut self, cpus: u32, devices: Vec<String>) {
        self.cpus_free += self.clamp_cpus(cpus);
        self.gpus_free.extend(devices);
        // Keep devices in a stable order so assignment is predictable.
        self.gpus_free.sort_by_key(|d| natural(d));
    }

    pub fn idle(&self) -> bool {
        self.cpus_free == self.cpus_total && self.gpus_free.len() == self.gpus_total
    }
}

fn natural(s: &str) -> (u64, String) {
    (s.parse().unwrap_or(u64::MAX), s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_never_double_booked() {
        let mut b = Budget::new(4, vec!["0".into(), "1".into(), "2".into()]);
        let a = b.try_take(1, 2).unwrap();
        assert_eq!(a, vec!["0", "1"]);
        assert!(b.try_take(1, 2).is_none());
        let c = b.try_take(1, 1).unwrap();
        assert_eq!(c, vec!["2"]);
        b.give_back(1, a);
        assert_eq!(b.try_take(1, 1).unwrap(), vec!["0"]);
    }

    #[test]
    fn cpus_are_clamped_to_the_budget() {
        let mut b = Budget::new(2, vec![]);
        assert!(b.try_take(8, 0).is_some());
        assert!(b.try_take(1, 0).is_none());
    }

    #[test]
    fn inventory_from_flag() {
        assert_eq!(gpu_inventory(Some("0,1, 2")), vec!["0", "1", "2"]);
        assert!(gpu_inventory(Some("none")).is_empty());
    }
}
