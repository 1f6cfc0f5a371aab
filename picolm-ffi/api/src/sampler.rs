//! `picolm_sampler_params`: the token-selection settings, one struct embedded in `picolm_generate_params` and
//! `picolm_agent_params`; read and checked by picolm-core's `SamplerParams`.

use picolm_core::sampler::SamplerParams;

use crate::boundary::{guard, picolm_result, Failure};

/// Token selection (temperature and filters, repetition penalty, seed). Embedded in `picolm_generate_params` and
/// `picolm_agent_params` (their `struct_size` covers it); `picolm_sampler_params_default` gives picolm-core's
/// defaults: greedy, no filters, no penalty, seed 0. Out-of-range settings are PICOLM_ERR_INVALID_ARG, checked
/// before any work (`picolm_generate_params_check` checks them alone).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct picolm_sampler_params {
    /// Temperature, >= 0 (0 = greedy).
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: u32,
    /// Nucleus sampling threshold in [0, 1] (1 = off).
    pub top_p: f32,
    /// Minimum probability relative to the best token, in [0, 1] (0 = off).
    pub min_p: f32,
    /// Repetition penalty, > 0 (1 = off).
    pub repeat_penalty: f32,
    /// Tokens the repetition penalty looks back over.
    pub repeat_last_n: u32,
    /// Random seed (same seed, settings and prompt: same output).
    pub seed: u64,
}

impl picolm_sampler_params {
    /// The C form of core settings (the counts saturate at `u32::MAX`).
    pub(crate) fn from_core(sp: &SamplerParams) -> picolm_sampler_params {
        picolm_sampler_params {
            temperature: sp.temperature,
            top_k: u32::try_from(sp.top_k).unwrap_or(u32::MAX),
            top_p: sp.top_p,
            min_p: sp.min_p,
            repeat_penalty: sp.repeat_penalty,
            repeat_last_n: u32::try_from(sp.repeat_last_n).unwrap_or(u32::MAX),
            seed: sp.seed,
        }
    }

    /// The core settings, checked by picolm-core (the offending setting is in the message).
    pub(crate) fn to_core(self) -> Result<SamplerParams, Failure> {
        let sp = SamplerParams {
            temperature: self.temperature,
            top_k: self.top_k as usize,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n as usize,
            seed: self.seed,
        };
        sp.validate().map_err(|e| Failure::invalid(e.to_string()))?;
        Ok(sp)
    }
}

/// Fills `params` with picolm-core's sampler defaults (the values `picolm_generate_params_default` and
/// `picolm_agent_params_default` embed). PICOLM_ERR_NULL_ARG for NULL.
///
/// # Safety
/// `params` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_sampler_params_default(params: *mut picolm_sampler_params) -> picolm_result {
    guard(|| {
        if params.is_null() {
            return Err(Failure::null("params"));
        }
        // SAFETY: non-NULL writable (caller contract).
        unsafe { params.write(picolm_sampler_params::from_core(&SamplerParams::default())) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_c_defaults_read_back_as_the_core_defaults() {
        let mut p = std::mem::MaybeUninit::uninit();
        // SAFETY: a writable struct.
        assert_eq!(unsafe { picolm_sampler_params_default(p.as_mut_ptr()) }, picolm_result::PICOLM_OK);
        // SAFETY: written by the call above.
        let p = unsafe { p.assume_init() };
        assert_eq!(p.to_core().unwrap(), SamplerParams::default());
    }

    #[test]
    fn out_of_range_settings_name_the_setting() {
        let mut p = picolm_sampler_params::from_core(&SamplerParams::default());
        p.top_p = 1.5;
        let f = p.to_core().unwrap_err();
        assert_eq!(f.code, picolm_result::PICOLM_ERR_INVALID_ARG);
        assert!(f.message.contains("top_p"), "{}", f.message);
    }
}
