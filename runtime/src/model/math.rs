//! exp, sin, cos and tanh as llama.cpp gets them: from the platform's C math library when we have std
//! (glibc on Linux boards and hosts, the library llama.cpp links), from the `libm` crate without.
//! Small models turn one-ulp differences here into different tokens, so matching the platform
//! library is what makes our logits bit-identical to llama.cpp's on the same machine.

/// e^x in f32.
#[inline]
pub fn expf(x: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.exp()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::expf(x)
    }
}

/// sin(x) in f32.
#[inline]
pub fn sinf(x: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.sin()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::sinf(x)
    }
}

/// cos(x) in f32.
#[inline]
pub fn cosf(x: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.cos()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::cosf(x)
    }
}

/// x^y in f32.
#[inline]
pub fn powf(x: f32, y: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.powf(y)
    }
    #[cfg(not(feature = "std"))]
    {
        libm::powf(x, y)
    }
}

/// tanh(x) in f32.
#[inline]
pub fn tanhf(x: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.tanh()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::tanhf(x)
    }
}

/// erf(x) in f32, from the `libm` crate in every build: std has no stable `erf`, and llama.cpp
/// never evaluates it for the models we compare against (its GPT-2 GELU is the tanh form).
#[inline]
pub fn erff(x: f32) -> f32 {
    libm::erff(x)
}
