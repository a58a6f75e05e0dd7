//! Element-wise and small kernels compiled three times, for AVX-512, for AVX2 with FMA and for
//! baseline x86-64, with the copy chosen at run time from the CPU's features: one binary runs
//! everywhere and the compiler vectorises each copy for its instruction set.

/// Defines `pub(super) fn NAME(ARGS) -> RESULT` that runs `generic::NAME` compiled for the best
/// instruction set the CPU has. `generic::NAME` must be `#[inline(always)]`, so each copy is
/// compiled with its target features.
macro_rules! dispatch {
    ($name:ident ( $($argument:ident : $type:ty),* ) $(-> $result:ty)?) => {
        pub(super) fn $name($($argument: $type),*) $(-> $result)? {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    unsafe fn wide($($argument: $type),*) $(-> $result)? {
                        generic::$name($($argument),*)
                    }
                    // SAFETY: the CPU has AVX-512F, AVX2 and FMA (AVX-512F implies them).
                    return unsafe { wide($($argument),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn narrow($($argument: $type),*) $(-> $result)? {
                        generic::$name($($argument),*)
                    }
                    // SAFETY: the CPU has AVX2 and FMA, checked just above.
                    return unsafe { narrow($($argument),*) };
                }
            }
            generic::$name($($argument),*)
        }
    };
}

pub(crate) use dispatch;
