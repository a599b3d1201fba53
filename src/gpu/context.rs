//! The device, its queue, the pipeline cache, transfers and counters.
//!
//! wgpu's default reaction to a validation error is a panic. We never let it reach that:
//! creation and submission run inside error scopes, and an uncaptured-error handler stashes
//! anything raised elsewhere (e.g. by [`GpuContext::storage`], which has no `Result`) so the
//! next fallible call reports it as [`Error::Gpu`].

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use wgpu::util::DeviceExt;

use super::plan::{Dispatch, Plan};
use super::shaders::Shader;
use super::tensor::{GpuTensor, align_up};
use crate::error::{Error, Result};
use crate::shapes::StepConstants;

/// How long a wait for the GPU may take before we report [`Error::GpuTimeout`]. Generous:
/// a software rasterizer runs a training step of the full model in seconds, not minutes.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest staging buffer a read uses; bigger tensors are read back in chunks of this size.
const STAGING_BYTES: u64 = 32 << 20;

/// A resource bound to a dispatch, next to the `Params` uniform at binding 0.
#[derive(Clone, Copy, Debug)]
pub enum Bind<'a> {
    /// A storage buffer range (read-only or read-write, as the WGSL declares it).
    Tensor(&'a GpuTensor),
    /// A whole uniform buffer, e.g. the per-step [`StepConstants`].
    Uniform(&'a wgpu::Buffer),
    /// A 64 KiB uniform window of a tensor made by [`GpuContext::uniform_storage`],
    /// starting `offset` bytes into its buffer.
    Window(&'a GpuTensor, u64),
}

/// Bytes of one uniform window: the most one uniform binding may cover under WebGPU's
/// default limits.
pub const UNIFORM_WINDOW_BYTES: u64 = 64 << 10;

/// How the compute-heavy ops (GEMM, convolutions) are carried out on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelSet {
    /// Register-tiled kernels reading storage buffers directly.
    Direct,
    /// Operands packed into uniform windows for `gemm_uniform` (needs subgroups): CPU
    /// drivers load from a storage buffer one invocation at a time, with a bounds check and a
    /// branch each, and from a uniform buffer without branches, several times faster.
    UniformWindows,
}

impl KernelSet {
    pub fn name(self) -> &'static str {
        match self {
            KernelSet::Direct => "direct",
            KernelSet::UniformWindows => "uniform-windows",
        }
    }
}

impl<'a> From<&'a GpuTensor> for Bind<'a> {
    fn from(t: &'a GpuTensor) -> Self {
        Bind::Tensor(t)
    }
}

impl<'a> From<&'a wgpu::Buffer> for Bind<'a> {
    fn from(b: &'a wgpu::Buffer) -> Self {
        Bind::Uniform(b)
    }
}

/// A command buffer recorded by [`GpuContext::record`], waiting to be submitted.
pub struct Recorded {
    label: String,
    buffer: wgpu::CommandBuffer,
    dispatches: u64,
}

/// A compute pipeline and the bind group layout wgpu derived from its entry point.
#[derive(Clone)]
struct CachedPipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// State shared by every clone of a context.
struct Shared {
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(Shader, String), CachedPipeline>>,
    staging: Mutex<Option<wgpu::Buffer>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
    bytes_transferred: AtomicU64,
    objects_created: AtomicU64,
    submits: AtomicU64,
    command_buffers: AtomicU64,
    dispatches: AtomicU64,
}

/// One GPU device with its queue, pipeline cache and transfer counters.
///
/// Cloning is cheap; clones share the device, the caches and the counters.
#[derive(Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with.
    pub limits: wgpu::Limits,
    /// Whether launchers pick the subgroup variants of their kernels.
    subgroups: bool,
    /// Which kernels the GEMM and convolution launchers use.
    kernels: KernelSet,
    poll_timeout: Duration,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("device_type", &self.info.device_type)
            .field("submits", &self.submits())
            .finish_non_exhaustive()
    }
}

/// Words for a device type, as a user would say them.
pub fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "software rasterizer",
        wgpu::DeviceType::Other => "unknown device type",
    }
}

/// Lower is preferred: discrete > integrated > virtual > software, and native APIs before GL.
fn preference(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = u8::from(info.backend == wgpu::Backend::Gl);
    (kind, backend)
}

/// Vulkan, Metal and DX12 (WGPU_BACKEND overrides): the GL backend's compute support is too
/// limited for these kernels, and probing it prints windowing-system noise on headless hosts.
fn instance() -> wgpu::Instance {
    let descriptor = wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    };
    wgpu::Instance::new(descriptor.with_env())
}

fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.retain(|a| a.get_info().backend != wgpu::Backend::Noop);
    adapters
}

/// Pick an adapter: `selector` is an index into [`GpuContext::adapters`] or a
/// case-insensitive substring of the adapter name; `None` takes the most capable kind.
fn select(adapters: Vec<wgpu::Adapter>, selector: Option<&str>) -> Result<wgpu::Adapter> {
    if adapters.is_empty() {
        return Err(Error::NoAdapter);
    }
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
    let Some(wanted) = selector.map(str::trim) else {
        let best = (0..adapters.len())
            .min_by_key(|&i| preference(&infos[i]))
            .unwrap_or(0);
        return adapters.into_iter().nth(best).ok_or(Error::NoAdapter);
    };

    let position = match wanted.parse::<usize>() {
        Ok(index) => (index < adapters.len()).then_some(index),
        Err(_) => {
            let needle = wanted.to_lowercase();
            infos
                .iter()
                .position(|i| i.name.to_lowercase().contains(&needle))
        }
    };
    match position {
        Some(i) => adapters.into_iter().nth(i).ok_or(Error::NoAdapter),
        None => Err(Error::AdapterNotFound {
            wanted: wanted.to_string(),
            available: infos
                .iter()
                .enumerate()
                .map(|(i, info)| format!("{i}: {} ({:?})", info.name, info.backend))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl GpuContext {
    /// Every adapter wgpu can see, in the order `new` indexes them.
    pub fn adapters() -> Vec<wgpu::AdapterInfo> {
        enumerate(&instance())
            .iter()
            .map(|a| a.get_info())
            .collect()
    }

    /// Open a device on the selected adapter (see [`GpuContext::adapters`]), requesting the
    /// adapter's own limits so large storage bindings work.
    pub fn new(selector: Option<&str>) -> Result<GpuContext> {
        Self::open(selector, None)
    }

    /// Like [`GpuContext::new`] but with `wgpu::Limits::default()`, the limits every WebGPU
    /// implementation offers: kernels must work within them.
    pub fn new_with_default_limits(selector: Option<&str>) -> Result<GpuContext> {
        Self::open(selector, Some(wgpu::Limits::default()))
    }

    fn open(selector: Option<&str>, limits: Option<wgpu::Limits>) -> Result<GpuContext> {
        let adapter = select(enumerate(&instance()), selector)?;
        let info = adapter.get_info();
        let required_limits = limits.unwrap_or_else(|| adapter.limits());
        // The subgroup kernels broadcast from eight invocations and run 64 per workgroup.
        let subgroups = adapter.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size >= 8
            && info.subgroup_max_size <= 64;
        let mut required_features = if subgroups {
            wgpu::Features::SUBGROUP
        } else {
            wgpu::Features::empty()
        };
        // GPU timestamps let the benchmark time kernels without the submit and the wait.
        required_features |= adapter.features() & wgpu::Features::TIMESTAMP_QUERY;

        let descriptor = wgpu::DeviceDescriptor {
            label: Some("gan-gpu"),
            required_features,
            required_limits,
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|e| {
                Error::RequestDevice {
                    adapter: info.name.clone(),
                    message: e.to_string(),
                }
            })?;

        // Validation errors outside an error scope land here instead of panicking.
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            lock(&sink).push(e.to_string());
        }));

        let limits = device.limits();
        log::info!(
            "GPU adapter: {} ({:?}, {}), driver {} {}",
            info.name,
            info.backend,
            device_type_name(info.device_type),
            info.driver,
            info.driver_info
        );
        log::info!(
            "GPU limits: storage binding {} MiB, buffer {} MiB, {} workgroups per dimension, \
             {} invocations per workgroup, {} KiB workgroup memory, {} storage buffers per stage",
            limits.max_storage_buffer_binding_size >> 20,
            limits.max_buffer_size >> 20,
            limits.max_compute_workgroups_per_dimension,
            limits.max_compute_invocations_per_workgroup,
            limits.max_compute_workgroup_storage_size >> 10,
            limits.max_storage_buffers_per_shader_stage
        );
        log::info!(
            "subgroup kernels: {}",
            if subgroups {
                format!(
                    "on (subgroup size {}..{})",
                    info.subgroup_min_size, info.subgroup_max_size
                )
            } else {
                "off (the adapter has no subgroups of 8 or more)".to_string()
            }
        );
        if info.device_type == wgpu::DeviceType::Cpu {
            log::warn!(
                "{} is a software rasterizer: expect training to be slow",
                info.name
            );
        }

        // CPU drivers get the uniform-window kernels; GPUs read storage buffers at full speed.
        let kernels = if subgroups && info.device_type == wgpu::DeviceType::Cpu {
            KernelSet::UniformWindows
        } else {
            KernelSet::Direct
        };
        log::info!("GEMM and convolution kernels: {}", kernels.name());

        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            subgroups,
            kernels,
            poll_timeout: DEFAULT_POLL_TIMEOUT,
            shared: Arc::new(Shared {
                modules: Mutex::new(HashMap::new()),
                pipelines: Mutex::new(HashMap::new()),
                staging: Mutex::new(None),
                uncaptured,
                bytes_transferred: AtomicU64::new(0),
                objects_created: AtomicU64::new(0),
                submits: AtomicU64::new(0),
                command_buffers: AtomicU64::new(0),
                dispatches: AtomicU64::new(0),
            }),
        })
    }

    /// Whether launchers use the subgroup variants of their kernels (same results, bit for
    /// bit; fewer loads).
    pub fn subgroup_kernels(&self) -> bool {
        self.subgroups
    }

    /// A clone (same device, caches and counters) whose launchers use only the kernels that
    /// need no subgroups, so that both variants can be run and compared on one device.
    pub fn without_subgroup_kernels(&self) -> GpuContext {
        GpuContext {
            subgroups: false,
            kernels: KernelSet::Direct,
            ..self.clone()
        }
    }

    /// Which kernels the GEMM and convolution launchers use.
    pub fn kernel_set(&self) -> KernelSet {
        self.kernels
    }

    /// A clone (same device, caches and counters) whose launchers use `kernels`. Fails when
    /// the device cannot run them (the uniform-window kernels need subgroups of 8 or more).
    pub fn with_kernel_set(&self, kernels: KernelSet) -> Result<GpuContext> {
        if kernels == KernelSet::UniformWindows && !self.subgroups {
            return Err(Error::Config(format!(
                "the {} kernels need subgroups of at least 8 invocations, which {} lacks",
                kernels.name(),
                self.info.name
            )));
        }
        Ok(GpuContext {
            kernels,
            ..self.clone()
        })
    }

    /// The kernel variants this context's launchers pick, as the one string a checkpoint
    /// records: `subgroup` or `plain`, then the GEMM and convolution kernel set
    /// (`subgroup;uniform-windows`). A run resumed on the same adapter with the same choice
    /// runs the same kernels and so the same sums.
    pub fn kernel_choice(&self) -> String {
        let variant = if self.subgroups { "subgroup" } else { "plain" };
        format!("{variant};{}", self.kernels.name())
    }

    /// A clone (same device, caches and counters) whose launchers pick the kernels `choice`
    /// names (a string from [`GpuContext::kernel_choice`]), or why this device cannot.
    pub fn with_kernel_choice(&self, choice: &str) -> std::result::Result<GpuContext, String> {
        let (variant, set) = choice.split_once(';').unwrap_or((choice, "direct"));
        let kernels = match set {
            "direct" => KernelSet::Direct,
            "uniform-windows" => KernelSet::UniformWindows,
            other => return Err(format!("this gan-gpu has no kernel set '{other}'")),
        };
        match variant {
            "plain" if kernels == KernelSet::Direct => Ok(self.without_subgroup_kernels()),
            "plain" => Err(format!("the {} kernels need subgroups", kernels.name())),
            "subgroup" if self.subgroups => {
                self.with_kernel_set(kernels).map_err(|e| e.to_string())
            }
            "subgroup" => Err("this adapter has no subgroups of 8 or more".to_string()),
            other => Err(format!("this gan-gpu has no kernel choice '{other}'")),
        }
    }

    /// Whether the device writes GPU timestamps (`wgpu::Features::TIMESTAMP_QUERY`) at the
    /// start and end of compute passes.
    pub fn timestamp_queries(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Whether the adapter is a CPU implementation (lavapipe, WARP, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Change how long waits for the GPU may take before failing with a timeout.
    pub fn set_poll_timeout(&mut self, timeout: Duration) {
        self.poll_timeout = timeout;
    }

    // ---- counters -------------------------------------------------------------------------

    /// Bytes moved between CPU and GPU so far: uploads, writes, uniforms and reads.
    pub fn bytes_transferred(&self) -> u64 {
        self.shared.bytes_transferred.load(Ordering::Relaxed)
    }

    /// GPU objects created so far: buffers, bind groups, shader modules and pipelines.
    pub fn objects_created(&self) -> u64 {
        self.shared.objects_created.load(Ordering::Relaxed)
    }

    /// Queue submissions so far.
    pub fn submits(&self) -> u64 {
        self.shared.submits.load(Ordering::Relaxed)
    }

    /// Command buffers submitted so far: one per plan submission and one per read chunk.
    pub fn command_buffers(&self) -> u64 {
        self.shared.command_buffers.load(Ordering::Relaxed)
    }

    /// Kernel launches submitted so far (every dispatch of every plan run).
    pub fn dispatches(&self) -> u64 {
        self.shared.dispatches.load(Ordering::Relaxed)
    }

    fn count_submit(&self, dispatches: u64) {
        self.shared.submits.fetch_add(1, Ordering::Relaxed);
        self.shared.command_buffers.fetch_add(1, Ordering::Relaxed);
        self.shared
            .dispatches
            .fetch_add(dispatches, Ordering::Relaxed);
    }

    fn count_bytes(&self, n: u64) {
        self.shared
            .bytes_transferred
            .fetch_add(n, Ordering::Relaxed);
    }

    fn count_object(&self) {
        self.shared.objects_created.fetch_add(1, Ordering::Relaxed);
    }

    // ---- errors ---------------------------------------------------------------------------

    /// Run `f` inside validation and out-of-memory error scopes; an error raised by it, or
    /// stashed earlier by the uncaptured-error handler, becomes [`Error::Gpu`] for `label`.
    pub fn scoped<T>(&self, label: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        if let Some(e) = validation.or(oom) {
            return Err(Error::Gpu {
                label: label.to_string(),
                message: e.to_string(),
            });
        }
        self.check_uncaptured(label)?;
        Ok(out)
    }

    /// Report an error the uncaptured-error handler stashed since the last check.
    pub fn check_uncaptured(&self, label: &str) -> Result<()> {
        let mut stash = lock(&self.shared.uncaptured);
        if stash.is_empty() {
            return Ok(());
        }
        let message = stash.join("\n");
        stash.clear();
        Err(Error::Gpu {
            label: format!("{label} (raised by an earlier call)"),
            message,
        })
    }

    // ---- buffers --------------------------------------------------------------------------

    /// A storage buffer (also `extra` usages) of at least `bytes`.
    fn create_storage_buffer(
        &self,
        label: &str,
        bytes: u64,
        extra: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        self.count_object();
        // At least 16 bytes, so that even an empty tensor can be bound (bindings are never
        // empty) and sizes stay a multiple of the copy alignment.
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: align_up(bytes.max(16), 16),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST
                | extra,
            mapped_at_creation: false,
        })
    }

    /// A zeroed f32 tensor of `len` elements in its own buffer that can also be bound as
    /// uniform windows ([`Bind::Window`]); at least one window long.
    pub fn uniform_storage(&self, label: &str, len: usize) -> GpuTensor {
        let bytes = align_up((len as u64 * 4).max(UNIFORM_WINDOW_BYTES), 16);
        let buffer = self.create_storage_buffer(label, bytes, wgpu::BufferUsages::UNIFORM);
        GpuTensor {
            buffer,
            offset: 0,
            len: (bytes / 4) as usize,
        }
    }

    /// A zeroed f32 tensor of `len` elements in its own buffer.
    pub fn storage(&self, label: &str, len: usize) -> GpuTensor {
        let buffer = self.create_storage_buffer(label, len as u64 * 4, wgpu::BufferUsages::empty());
        GpuTensor {
            buffer,
            offset: 0,
            len,
        }
    }

    /// A new tensor holding `data`.
    pub fn upload(&self, label: &str, data: &[f32]) -> GpuTensor {
        let t = self.storage(label, data.len());
        self.write(&t, data);
        t
    }

    /// A new buffer holding `data` as u32 words (e.g. bytes packed four per word).
    pub fn upload_u32(&self, label: &str, data: &[u32]) -> GpuTensor {
        let t = self.storage(label, data.len());
        self.write_bytes(&t, bytemuck::cast_slice(data));
        t
    }

    /// Overwrite the first `data.len()` elements of `t` (the write happens in queue order).
    pub fn write(&self, t: &GpuTensor, data: &[f32]) {
        self.write_bytes(t, bytemuck::cast_slice(data));
    }

    fn write_bytes(&self, t: &GpuTensor, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if bytes.len() as u64 > t.byte_len() {
            // Recorded like a wgpu validation error: the next fallible call reports it.
            lock(&self.shared.uncaptured).push(format!(
                "write of {} bytes into a tensor of {} bytes",
                bytes.len(),
                t.byte_len()
            ));
            return;
        }
        self.queue.write_buffer(&t.buffer, t.offset, bytes);
        self.count_bytes(bytes.len() as u64);
    }

    /// A uniform buffer holding `c`, for the RNG and Adam kernels of one training step.
    pub fn step_uniform(&self, c: &StepConstants) -> wgpu::Buffer {
        self.count_object();
        self.count_bytes(std::mem::size_of::<StepConstants>() as u64);
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("step_constants"),
                contents: bytemuck::bytes_of(c),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Update a buffer made by [`GpuContext::step_uniform`] (in queue order).
    pub fn write_step_uniform(&self, buf: &wgpu::Buffer, c: &StepConstants) {
        self.queue.write_buffer(buf, 0, bytemuck::bytes_of(c));
        self.count_bytes(std::mem::size_of::<StepConstants>() as u64);
    }

    /// Copy `t` back to the CPU. Waits for all work submitted before, at most the poll
    /// timeout per chunk.
    pub fn read(&self, t: &GpuTensor) -> Result<Vec<f32>> {
        let mut out = vec![0f32; t.len];
        self.read_into(t, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    /// Copy `t` back to the CPU as raw u32 words.
    pub fn read_u32(&self, t: &GpuTensor) -> Result<Vec<u32>> {
        let mut out = vec![0u32; t.len];
        self.read_into(t, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    fn read_into(&self, t: &GpuTensor, out: &mut [u8]) -> Result<()> {
        // One staging buffer, kept for later reads, so reading a loss every step creates
        // nothing; the lock also keeps two threads from mapping it at once.
        let mut staging = lock(&self.shared.staging);
        let chunk = (out.len() as u64).clamp(4, STAGING_BYTES);
        if staging.as_ref().is_none_or(|b| b.size() < chunk) {
            self.count_object();
            *staging = Some(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read_staging"),
                size: align_up(chunk, 16),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }

        let Some(buffer) = staging.as_ref() else {
            unreachable!("the staging buffer was created above");
        };
        for (i, dst) in out.chunks_mut(buffer.size() as usize).enumerate() {
            let offset = t.offset + (i as u64) * buffer.size();
            if let Err(e) = self.read_chunk(buffer, &t.buffer, offset, dst) {
                // It may still be mapped or waiting for a map: start afresh next time.
                *staging = None;
                return Err(e);
            }
            self.count_bytes(dst.len() as u64);
        }
        Ok(())
    }

    fn read_chunk(
        &self,
        staging: &wgpu::Buffer,
        src: &wgpu::Buffer,
        offset: u64,
        dst: &mut [u8],
    ) -> Result<()> {
        let size = dst.len() as u64;
        let index = self.scoped("read", || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("read"),
                });
            encoder.copy_buffer_to_buffer(src, offset, staging, 0, size);
            self.queue.submit([encoder.finish()])
        })?;
        self.count_submit(0);

        let (sender, receiver) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, 0..size, move |r| {
            let _ = sender.send(r);
        });
        self.poll(index, "reading a tensor back")?;
        // Another thread's poll may be the one that runs the map callback, a moment after
        // ours returned: wait for it, polling, up to the poll timeout.
        let deadline = std::time::Instant::now() + self.poll_timeout;
        let mapped = loop {
            match receiver.try_recv() {
                Ok(result) => break Some(result),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break None,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    if std::time::Instant::now() > deadline {
                        break None;
                    }
                    let _ = self.device.poll(wgpu::PollType::Poll);
                    std::thread::yield_now();
                }
            }
        };
        match mapped {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(Error::Gpu {
                    label: "read".into(),
                    message: e.to_string(),
                });
            }
            None => {
                return Err(Error::Gpu {
                    label: "read".into(),
                    message: "the staging buffer was not mapped after the copy finished".into(),
                });
            }
        }
        let mapped = self.scoped("read", || staging.get_mapped_range(0..size))?;
        match mapped {
            Ok(view) => dst.copy_from_slice(&view),
            Err(e) => {
                return Err(Error::Gpu {
                    label: "read".into(),
                    message: e.to_string(),
                });
            }
        }
        staging.unmap();
        Ok(())
    }

    fn poll(&self, index: wgpu::SubmissionIndex, what: &str) -> Result<()> {
        let wait = wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: Some(self.poll_timeout),
        };
        match self.device.poll(wait) {
            Ok(_) => self.check_uncaptured(what),
            Err(wgpu::PollError::Timeout) => Err(Error::GpuTimeout {
                what: what.to_string(),
                seconds: self.poll_timeout.as_secs(),
            }),
            Err(e) => Err(Error::Gpu {
                label: what.to_string(),
                message: e.to_string(),
            }),
        }
    }

    // ---- pipelines and dispatches ---------------------------------------------------------

    fn module(&self, shader: Shader) -> Result<wgpu::ShaderModule> {
        let mut modules = lock(&self.shared.modules);
        if let Some(m) = modules.get(&shader) {
            return Ok(m.clone());
        }
        let source = shader.source();
        let label = format!("{}.wgsl", shader.name());
        let module = self.scoped(&label, || {
            self.device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&label),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                })
        })?;
        self.count_object();
        modules.insert(shader, module.clone());
        Ok(module)
    }

    fn cached_pipeline(&self, shader: Shader, entry: &str) -> Result<CachedPipeline> {
        let key = (shader, entry.to_string());
        if let Some(p) = lock(&self.shared.pipelines).get(&key) {
            return Ok(p.clone());
        }

        // Built outside the cache lock (it can take a while); a racing thread may build the
        // same pipeline, and the first one stored wins.
        let module = self.module(shader)?;
        let label = format!("{}:{entry}", shader.name());
        let cached = self.scoped(&label, || {
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                });
            let layout = pipeline.get_bind_group_layout(0);
            CachedPipeline { pipeline, layout }
        })?;
        self.count_object();
        Ok(lock(&self.shared.pipelines)
            .entry(key)
            .or_insert(cached)
            .clone())
    }

    /// The pipeline of one entry point, built on first use and cached for the context's life.
    pub fn pipeline(&self, shader: Shader, entry: &str) -> Result<wgpu::ComputePipeline> {
        Ok(self.cached_pipeline(shader, entry)?.pipeline)
    }

    /// Everything one kernel launch needs, created now so a plan runs without creating
    /// anything: the cached pipeline, a `Params` uniform holding `params` at binding 0, and
    /// a bind group with `bindings` (WGSL binding number, resource).
    ///
    /// The label is `"<family>:<entry>"`. Fails with [`Error::LimitExceeded`] when a storage
    /// binding or the grid is larger than the device allows, and with [`Error::Gpu`] when
    /// wgpu rejects the pipeline or the bind group.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        shader: Shader,
        entry: &str,
        params: &P,
        bindings: &[(u32, Bind<'_>)],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let label = format!("{}:{entry}", shader.name());
        self.check_grid(&label, workgroups)?;
        for (binding, resource) in bindings {
            match resource {
                Bind::Tensor(t) => {
                    self.check_binding(&format!("{label} binding {binding}"), t.binding_size())?
                }
                Bind::Window(t, offset) => self.check_window(&label, *binding, t, *offset)?,
                Bind::Uniform(_) => {}
            }
        }
        let cached = self.cached_pipeline(shader, entry)?;

        // Params: padded to 16 bytes, the granularity of uniform layouts.
        let mut contents = bytemuck::bytes_of(params).to_vec();
        contents.resize(align_up(contents.len().max(16) as u64, 16) as usize, 0);
        let bind_group = self.scoped(&label, || {
            let uniform = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(&label),
                    contents: &contents,
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform.as_entire_binding(),
            }];
            for (binding, resource) in bindings {
                let resource = match resource {
                    Bind::Tensor(t) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &t.buffer,
                        offset: t.offset,
                        size: NonZeroU64::new(t.binding_size()),
                    }),
                    Bind::Uniform(b) => b.as_entire_binding(),
                    Bind::Window(t, offset) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &t.buffer,
                        offset: t.offset + offset,
                        size: NonZeroU64::new(UNIFORM_WINDOW_BYTES),
                    }),
                };
                entries.push(wgpu::BindGroupEntry {
                    binding: *binding,
                    resource,
                });
            }
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&label),
                layout: &cached.layout,
                entries: &entries,
            })
        })?;
        self.count_object();
        self.count_object();
        self.count_bytes(contents.len() as u64);

        Ok(Dispatch {
            label,
            pipeline: cached.pipeline,
            bind_group,
            workgroups,
        })
    }

    /// Fail with [`Error::LimitExceeded`] when a storage binding of `bytes` is too large.
    pub fn check_binding(&self, what: &str, bytes: u64) -> Result<()> {
        let max = self.limits.max_storage_buffer_binding_size;
        if bytes > max {
            return Err(Error::LimitExceeded {
                what: format!("{what} (bytes)"),
                needed: bytes,
                max,
                hint: "limit max_storage_buffer_binding_size; use a smaller batch or layer".into(),
            });
        }
        Ok(())
    }

    /// A uniform window must lie inside its tensor, start on the device's uniform offset
    /// alignment, and fit one uniform binding.
    fn check_window(&self, label: &str, binding: u32, t: &GpuTensor, offset: u64) -> Result<()> {
        let max = self.limits.max_uniform_buffer_binding_size;
        if UNIFORM_WINDOW_BYTES > max {
            return Err(Error::LimitExceeded {
                what: format!("{label} binding {binding} (uniform window bytes)"),
                needed: UNIFORM_WINDOW_BYTES,
                max,
                hint: "limit max_uniform_buffer_binding_size".into(),
            });
        }
        let align = self.limits.min_uniform_buffer_offset_alignment.max(1) as u64;
        if offset + UNIFORM_WINDOW_BYTES > t.byte_len()
            || !(t.offset + offset).is_multiple_of(align)
        {
            return Err(Error::Gpu {
                label: format!("{label} binding {binding}"),
                message: format!(
                    "uniform window at byte {offset} of a {} byte tensor (alignment {align})",
                    t.byte_len()
                ),
            });
        }
        Ok(())
    }

    fn check_grid(&self, what: &str, workgroups: [u32; 3]) -> Result<()> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        if let Some(&needed) = workgroups.iter().find(|&&w| w > max) {
            return Err(Error::LimitExceeded {
                what: format!("{what} (workgroups in one dimension)"),
                needed: needed as u64,
                max: max as u64,
                hint: "limit max_compute_workgroups_per_dimension".into(),
            });
        }
        Ok(())
    }

    /// A grid of `groups` workgroups: along x while it fits, folded into y beyond that (the
    /// kernels rebuild the linear workgroup index as `id.x + id.y * num_workgroups.x` and
    /// guard it). Fails with [`Error::LimitExceeded`] when even x * y cannot hold it.
    pub fn grid(&self, what: &str, groups: u64) -> Result<[u32; 3]> {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as u64;
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x).max(1);
        if y > max {
            return Err(Error::LimitExceeded {
                what: format!("{what} (workgroups)"),
                needed: groups,
                max: max * max,
                hint: "limit max_compute_workgroups_per_dimension, squared".into(),
            });
        }
        Ok([x as u32, y as u32, 1])
    }

    // ---- running plans --------------------------------------------------------------------

    /// Record `plans`, in order, into one compute pass of one command buffer and submit it,
    /// without waiting.
    pub fn submit(&self, plans: &[&Plan]) -> Result<wgpu::SubmissionIndex> {
        let recorded = self.record(plans, 1, None, |_| {})?;
        self.submit_recorded(recorded)
    }

    /// Record `plans`, in order, `repeats` times over into one compute pass of a command
    /// buffer, without submitting it: `timestamp_writes` go on the pass and `after_pass` adds
    /// commands behind it (resolving those timestamps). A benchmark records first and starts
    /// its clock at [`GpuContext::submit_recorded`], so recording is not timed.
    pub fn record(
        &self,
        plans: &[&Plan],
        repeats: u32,
        timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
        after_pass: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> Result<Recorded> {
        let label = plans.first().map_or("plan", |p| p.label());
        let buffer = self.scoped(label, || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(label),
                    timestamp_writes,
                });
                for _ in 0..repeats {
                    for plan in plans {
                        plan.record(&mut pass);
                    }
                }
            }
            after_pass(&mut encoder);
            encoder.finish()
        })?;
        let per_repeat: u64 = plans.iter().map(|p| p.len() as u64).sum();
        Ok(Recorded {
            label: label.to_string(),
            buffer,
            dispatches: per_repeat * repeats as u64,
        })
    }

    /// Submit a command buffer made by [`GpuContext::record`], without waiting.
    pub fn submit_recorded(&self, recorded: Recorded) -> Result<wgpu::SubmissionIndex> {
        let Recorded {
            label,
            buffer,
            dispatches,
        } = recorded;
        let index = self.scoped(&label, || self.queue.submit([buffer]))?;
        self.count_submit(dispatches);
        Ok(index)
    }

    /// Wait (at most the poll timeout) until the submission `index` has finished.
    pub fn wait(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        self.poll(index, "waiting for submitted work")
    }

    /// Submit `plans` as one command buffer and wait for it.
    pub fn run(&self, plans: &[&Plan]) -> Result<()> {
        let index = self.submit(plans)?;
        self.wait(index)
    }
}

/// Lock a mutex, ignoring poisoning: the data behind our mutexes (caches, error stash) stays
/// consistent even if a thread panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
