//! What becomes of an example that asks for a GPU (or any extended resource: `amd.com/gpu`,
//! `google.com/tpu`, a device plugin's) that no node of the cluster offers: skipped, since no
//! retry can give the cluster one, or run as a CPU smoke test with the resource taken out.

use serde::Deserialize;
use serde_json::{Map, Value};

/// `gpu: skip` (the default) or `gpu: cpu`, in the suite's `gpu:`, a profile or an override.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuMode {
    /// The case ends at once as skipped, saying what it needs.
    #[default]
    Skip,
    /// The resources no node offers are removed from requests and limits (with the node
    /// selectors and tolerations the suite names), and the case runs on CPU.
    Cpu,
}

/// The suite's `gpu:` section.
#[derive(Debug, Clone, Default)]
pub struct GpuSettings {
    pub mode: GpuMode,
    /// Node selector keys a CPU smoke test removes (`nvidia.com/gpu.present`,
    /// `cloud.google.com/gke-accelerator`): no node without the accelerator has them.
    pub node_selectors: Vec<String>,
    /// Toleration keys a CPU smoke test removes (`nvidia.com/gpu`).
    pub tolerations: Vec<String>,
    /// Parameters a CPU smoke test gives a notebook (Trainer's notebooks take `num_gpu`).
    pub parameters: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct GpuFile {
    #[serde(default)]
    mode: GpuMode,
    #[serde(default)]
    node_selectors: Vec<String>,
    #[serde(default)]
    tolerations: Vec<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
}

impl From<&GpuFile> for GpuSettings {
    fn from(file: &GpuFile) -> GpuSettings {
        GpuSettings {
            mode: file.mode,
            node_selectors: file.node_selectors.clone(),
            tolerations: file.tolerations.clone(),
            parameters: file.parameters.clone(),
        }
    }
}
