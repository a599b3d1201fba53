use gan_gpu::gpu::GpuContext;

pub fn run() -> anyhow::Result<()> {
    let adapters = GpuContext::adapters();
    if adapters.is_empty() {
        return Err(gan_gpu::Error::NoAdapter.into());
    }
    for (i, info) in adapters.iter().enumerate() {
        let kind = match info.device_type {
            wgpu::DeviceType::Cpu => "software rasterizer",
            wgpu::DeviceType::DiscreteGpu => "discrete GPU",
            wgpu::DeviceType::IntegratedGpu => "integrated GPU",
            wgpu::DeviceType::VirtualGpu => "virtual GPU",
            wgpu::DeviceType::Other => "other",
        };
        println!(
            "{i}: {} ({:?}, {kind}; driver {} {})",
            info.name, info.backend, info.driver, info.driver_info
        );
    }
    Ok(())
}
