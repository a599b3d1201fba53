//! A plan: kernel launches recorded once and replayed, in order, in one compute pass.

/// One kernel launch with everything it needs already created.
#[derive(Clone, Debug)]
pub struct Dispatch {
    /// `"<family>:<entry>"`, also the label of its pipeline, bind group and params uniform.
    pub label: String,
    pub pipeline: wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
}

/// An ordered list of dispatches. Running a plan creates no GPU object: building it did.
///
/// Within one compute pass wgpu makes each dispatch see the writes of the ones before it.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    label: String,
    dispatches: Vec<Dispatch>,
}

impl Plan {
    pub fn new() -> Self {
        Self::labelled("plan")
    }

    /// A plan whose command encoder and compute pass carry `label` (e.g. `"train_step"`).
    pub fn labelled(label: &str) -> Self {
        Plan {
            label: label.to_string(),
            dispatches: Vec::new(),
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn push(&mut self, dispatch: Dispatch) {
        self.dispatches.push(dispatch);
    }

    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }

    pub fn dispatches(&self) -> &[Dispatch] {
        &self.dispatches
    }

    /// Move every dispatch of `other` to the end of this plan.
    pub fn append(&mut self, other: &mut Plan) {
        self.dispatches.append(&mut other.dispatches);
    }

    /// Record every dispatch into `pass`.
    pub fn record(&self, pass: &mut wgpu::ComputePass) {
        for d in &self.dispatches {
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
        }
    }
}
