//! Every WGSL source in the registry, as compiled (philox.wgsl prepended where used), parses
//! and validates with naga, and agrees with its Rust launcher on layout. No GPU needed.

use gan_gpu::gpu::ops::{
    PER_CHANNEL_REDUCTIONS, REDUCTION_WORKGROUP_SIZE, WORKGROUP_SIZE, params_layouts,
};
use gan_gpu::gpu::{Shader, all_sources};
use gan_gpu::shapes::StepConstants;

fn parse(name: &str, source: &str) -> naga::Module {
    naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(source)))
}

/// Size in bytes of the WGSL struct called `name`, if the module declares one.
fn struct_size(module: &naga::Module, name: &str) -> Option<u32> {
    module.types.iter().find_map(|(_, ty)| match &ty.inner {
        naga::TypeInner::Struct { span, .. } if ty.name.as_deref() == Some(name) => Some(*span),
        _ => None,
    })
}

#[test]
fn every_registered_shader_parses_and_validates() {
    let sources = all_sources();
    assert_eq!(sources.len(), Shader::ALL.len());
    for (shader, (name, source)) in Shader::ALL.into_iter().zip(sources) {
        let module = parse(name, &source);
        // Only the capabilities the family declares: a subgroup operation anywhere else
        // would fail on devices without them.
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            shader.naga_capabilities(),
        );
        validator
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
        if let Err(e) = validator.validate(&module) {
            panic!(
                "{name}.wgsl does not validate:\n{}",
                e.emit_to_string(&source)
            );
        }
        assert!(
            module
                .entry_points
                .iter()
                .any(|ep| ep.stage == naga::ShaderStage::Compute),
            "{name}.wgsl has no compute entry point"
        );
    }
}

#[test]
fn random_families_include_philox() {
    for shader in Shader::ALL {
        let has_philox = shader.source().contains("fn philox4x32(");
        assert_eq!(has_philox, shader.uses_random(), "{}.wgsl", shader.name());
    }
}

#[test]
fn element_wise_and_reduction_kernels_use_the_shared_workgroup_size() {
    for (shader, _) in params_layouts() {
        let module = parse(shader.name(), &shader.source());
        for ep in &module.entry_points {
            let (want, name) = if PER_CHANNEL_REDUCTIONS.contains(&ep.name.as_str()) {
                (REDUCTION_WORKGROUP_SIZE, "REDUCTION_WORKGROUP_SIZE")
            } else {
                (
                    WORKGROUP_SIZE,
                    "WORKGROUP_SIZE, which the launchers size grids with",
                )
            };
            assert_eq!(
                ep.workgroup_size,
                [want, 1, 1],
                "{}:{} must use ops::{name}",
                shader.name(),
                ep.name
            );
        }
    }
}

#[test]
fn params_structs_match_their_rust_mirrors() {
    for (shader, rust_size) in params_layouts() {
        let module = parse(shader.name(), &shader.source());
        let wgsl_size = struct_size(&module, "Params")
            .unwrap_or_else(|| panic!("{}.wgsl declares no `struct Params`", shader.name()));
        assert_eq!(
            wgsl_size as usize,
            rust_size,
            "{}.wgsl Params is {wgsl_size} bytes, its Rust mirror {rust_size}",
            shader.name()
        );

        if let Some(size) = struct_size(&module, "StepConstants") {
            assert_eq!(
                size as usize,
                std::mem::size_of::<StepConstants>(),
                "{}.wgsl StepConstants differs from shapes::StepConstants",
                shader.name()
            );
        }
    }
}

/// The ceiling kernels are not in `params_layouts` (that list is the model's families), so
/// their Params mirror and workgroup size are held to the WGSL here.
#[test]
fn roofline_params_and_workgroup_size_match_the_launcher() {
    let shader = Shader::Roofline;
    let module = parse(shader.name(), &shader.source());
    let wgsl_size = struct_size(&module, "Params").expect("roofline.wgsl declares Params");
    assert_eq!(wgsl_size as usize, gan_gpu::gpu::ops::roofline::PARAMS_SIZE);
    for ep in &module.entry_points {
        assert_eq!(
            ep.workgroup_size,
            [WORKGROUP_SIZE, 1, 1],
            "roofline:{}",
            ep.name
        );
    }
}

/// The value of the module-scope `const NAME: u32` called `name`, if there is one.
fn u32_constant(module: &naga::Module, name: &str) -> Option<u32> {
    module.constants.iter().find_map(|(_, c)| {
        if c.name.as_deref() != Some(name) {
            return None;
        }
        match module.global_expressions[c.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => Some(v),
            _ => None,
        }
    })
}

#[test]
fn pack_group_matches_the_launcher() {
    let shader = Shader::Pack;
    let module = parse(shader.name(), &shader.source());
    assert_eq!(
        u32_constant(&module, "GROUP").map(|v| v as usize),
        Some(gan_gpu::gpu::ops::pack::GROUP),
        "pack.wgsl GROUP must equal ops::pack::GROUP, which sizes the pack grids"
    );
}

#[test]
fn every_window_gemm_entry_point_the_launcher_names_exists() {
    let shader = Shader::GemmUniform;
    let module = parse(shader.name(), &shader.source());
    let names: Vec<&str> = module
        .entry_points
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let launched = gan_gpu::gpu::ops::gemm_uniform::entry_points();
    assert_eq!(launched.len(), 12);
    for entry in &launched {
        assert!(
            names.contains(&entry.as_str()),
            "gemm_uniform.wgsl lacks {entry}"
        );
    }
    assert_eq!(
        names.len(),
        launched.len(),
        "gemm_uniform.wgsl has entry points no launcher uses"
    );
}
