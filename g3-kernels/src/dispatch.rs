//! The one runtime SIMD dispatch of the crate.
//!
//! Each kernel is written once, as plain Rust that the compiler can vectorise, and compiled
//! three times: for AVX-512, for AVX2 with FMA and for baseline x86-64. Every call picks the
//! best copy the CPU runs, so one binary runs on any x86-64 CPU and still uses the widest
//! registers where they exist. Other architectures get the one portable copy.

/// An instruction set a kernel copy is compiled for. A value exists only for instruction sets
/// this CPU supports ([`best`](Level::best), [`supported`](Level::supported)), which is
/// what makes calling a copy through it safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Level(Isa);

/// The instruction sets, private to this module so no other code can make a [`Level`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// AVX-512F (which implies AVX2 and FMA).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX2 with FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// The target's baseline (SSE2 on x86-64).
    Baseline,
}

impl Level {
    /// The widest instruction set this CPU supports. Feature detection is cached by the
    /// standard library, so this costs an atomic load or two per call.
    #[inline]
    pub(crate) fn best() -> Level {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Level(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Level(Isa::Avx2Fma);
            }
        }
        Level(Isa::Baseline)
    }

    /// Every instruction set this CPU supports, widest first (for tests that compare the
    /// copies with each other).
    #[cfg(test)]
    pub(crate) fn supported() -> Vec<Level> {
        let mut levels = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                levels.push(Level(Isa::Avx512));
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                levels.push(Level(Isa::Avx2Fma));
            }
        }
        levels.push(Level(Isa::Baseline));
        levels
    }

    /// Whether this is AVX-512.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn is_avx512(self) -> bool {
        self.0 == Isa::Avx512
    }

    /// Whether this is AVX2 with FMA.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn is_avx2_fma(self) -> bool {
        self.0 == Isa::Avx2Fma
    }
}

/// Defines `VIS fn NAME(ARGS) -> RESULT`, which runs `KERNEL` compiled for the best
/// instruction set of the CPU ([`Level::best`]), and `pub(crate) fn AT(level, ARGS) -> RESULT`,
/// which runs the copy for `level`. `KERNEL` must be `#[inline(always)]`, so that each copy
/// is compiled with its target features.
///
/// `= kernel` runs the same kernel in every copy. `= kernel::<FMA>` runs `kernel::<true>` in
/// the AVX-512 and AVX2 copies, which have fused multiply-add instructions, and
/// `kernel::<false>` in the baseline copy, where `f32::mul_add` would be a library call.
macro_rules! dispatch {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident / $at:ident ($($argument:ident : $type:ty),* $(,)?)
        $(-> $result:ty)?
        = $kernel:ident ::<FMA>
    ) => {
        $crate::dispatch::dispatch!(@define [$(#[$meta])*] $vis $name $at
            ($($argument: $type),*) ($($result)?) [$kernel::<true>] [$kernel::<false>]);
    };
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident / $at:ident ($($argument:ident : $type:ty),* $(,)?)
        $(-> $result:ty)?
        = $kernel:path
    ) => {
        $crate::dispatch::dispatch!(@define [$(#[$meta])*] $vis $name $at
            ($($argument: $type),*) ($($result)?) [$kernel] [$kernel]);
    };
    (
        @define [$($meta:tt)*] $vis:vis $name:ident $at:ident
        ($($argument:ident : $type:ty),*) ($($result:ty)?) [$($fused:tt)*] [$($plain:tt)*]
    ) => {
        $($meta)*
        #[inline]
        $vis fn $name($($argument: $type),*) $(-> $result)? {
            $at($crate::dispatch::Level::best(), $($argument),*)
        }

        /// The same, compiled for `level`.
        #[inline]
        pub(crate) fn $at(
            level: $crate::dispatch::Level,
            $($argument: $type),*
        ) $(-> $result)? {
            #[cfg(target_arch = "x86_64")]
            {
                if level.is_avx512() {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    unsafe fn wide($($argument: $type),*) $(-> $result)? {
                        $($fused)*($($argument),*)
                    }
                    // SAFETY: a `Level` for AVX-512 exists only on CPUs with AVX-512F, AVX2
                    // and FMA (AVX-512F implies the other two).
                    return unsafe { wide($($argument),*) };
                }
                if level.is_avx2_fma() {
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn narrow($($argument: $type),*) $(-> $result)? {
                        $($fused)*($($argument),*)
                    }
                    // SAFETY: a `Level` for AVX2 with FMA exists only on CPUs that have both.
                    return unsafe { narrow($($argument),*) };
                }
            }
            let _ = level;
            $($plain)*($($argument),*)
        }
    };
}

pub(crate) use dispatch;
