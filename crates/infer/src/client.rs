//! The client side: what it needs to know of the compiled circuit (the layout, widths and the
//! encryption level), encryption of embeddings and decryption of logits, for whole prompts
//! ([`Client`]) and for step-by-step decoding ([`StepClient`]). The embedding table stays with
//! the client; the server never sees a token.

use psf_ckks::{Ciphertext, CkksParameters, Decryptor, Encoder, Encryptor};
use serde::{Deserialize, Serialize};

use crate::compile::decode::{Decoder, StepLayout};
use crate::compile::{CompiledModel, HeadPositions};
use crate::layout::Layout;
use crate::{InferError, Result};

/// The public facts a client needs (serializable, so a server can send them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientSpec {
    /// The packing.
    pub layout: Layout,
    /// Embedding width.
    pub d_model: usize,
    /// Logits per position.
    pub vocab: usize,
    /// Level to encrypt at.
    pub level: usize,
    /// The positions the server computes logits for (every position in specs written
    /// before this field existed).
    #[serde(default)]
    pub head: HeadPositions,
}

impl ClientSpec {
    /// The spec of a compiled model.
    ///
    /// # Errors
    /// Invalid parameters.
    pub fn of(m: &CompiledModel) -> Result<Self> {
        let params = m.params()?;
        Ok(Self {
            layout: m.layout,
            d_model: m.ir.d_model,
            vocab: m.ir.vocab(),
            level: m.fresh_level(&params),
            head: m.head,
        })
    }
}

/// Checks that a spec's slots and encryption level fit `params`.
fn check_params(what: &str, slots: usize, level: usize, params: &CkksParameters) -> Result<()> {
    if slots != params.max_slots() || level > params.ring().max_level() {
        return Err(InferError::shape(
            what,
            format!("{} slots", params.max_slots()),
            format!("{slots} slots, level {level}"),
        ));
    }
    Ok(())
}

/// Client-side encryption and decryption for one compiled model.
pub struct Client {
    spec: ClientSpec,
    params: CkksParameters,
    encoder: Encoder,
}

impl Client {
    /// A client for `spec` under `params`.
    pub fn new(spec: ClientSpec, params: &CkksParameters) -> Result<Self> {
        check_params("client spec", spec.layout.slots, spec.level, params)?;
        Ok(Self {
            spec,
            params: params.clone(),
            encoder: Encoder::new(params),
        })
    }

    /// The spec.
    pub fn spec(&self) -> &ClientSpec {
        &self.spec
    }

    /// Packs and encrypts embeddings `[prompt][position][feature]`.
    ///
    /// # Errors
    /// Wrong shapes or an encryption error.
    pub fn encrypt_embeddings(
        &self,
        enc: &mut Encryptor,
        x: &[Vec<Vec<f64>>],
    ) -> Result<Vec<Ciphertext>> {
        let packed = self.spec.layout.pack(x, self.spec.d_model)?;
        packed
            .iter()
            .map(|v| {
                let pt = self.encoder.encode(
                    v,
                    self.params.max_log_slots(),
                    self.spec.level,
                    self.params.default_scale(),
                )?;
                Ok(enc.encrypt(&pt)?)
            })
            .collect()
    }

    /// Decrypts logit ciphertexts into slot vectors.
    ///
    /// # Errors
    /// A decryption error or the wrong number of ciphertexts.
    pub fn decrypt_slots(&self, dec: &Decryptor, cts: &[Ciphertext]) -> Result<Vec<Vec<f64>>> {
        let want = self
            .spec
            .head
            .output_cts(&self.spec.layout, self.spec.vocab);
        if cts.len() != want {
            return Err(InferError::shape("logit ciphertexts", want, cts.len()));
        }
        cts.iter()
            .map(|c| Ok(self.encoder.decode(&dec.decrypt(c)?)?))
            .collect()
    }

    /// The logits of `(prompt, position)` pairs.
    ///
    /// # Errors
    /// As [`Self::decrypt_slots`], or a position out of range or not computed by the head.
    pub fn decrypt_logits(
        &self,
        dec: &Decryptor,
        cts: &[Ciphertext],
        positions: &[(usize, usize)],
    ) -> Result<Vec<Vec<f64>>> {
        let slots = self.decrypt_slots(dec, cts)?;
        positions
            .iter()
            .map(|&(b, p)| {
                let (layout, vocab) = (&self.spec.layout, self.spec.vocab);
                self.spec.head.logits(layout, vocab, &slots, b, p)
            })
            .collect()
    }
}

/// The public facts a client needs to decode step by step (serializable, so a server can send
/// them): the step layout and the encryption level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSpec {
    /// Where a token's features and the logits sit.
    pub layout: StepLayout,
    /// Level to encrypt at.
    pub level: usize,
}

impl StepSpec {
    /// The spec of a decoder.
    ///
    /// # Errors
    /// Invalid parameters.
    pub fn of(dec: &Decoder) -> Result<Self> {
        let params = dec.params()?;
        Ok(Self {
            layout: dec.layout,
            level: dec.fresh_level(&params),
        })
    }
}

/// Client-side encryption of one token and decryption of one position's logits for a
/// [`Decoder`].
pub struct StepClient {
    spec: StepSpec,
    params: CkksParameters,
    encoder: Encoder,
}

impl StepClient {
    /// A client for `spec` under `params`.
    ///
    /// # Errors
    /// A spec of other parameters (slots, levels).
    pub fn new(spec: StepSpec, params: &CkksParameters) -> Result<Self> {
        check_params("step spec", spec.layout.slots, spec.level, params)?;
        Ok(Self {
            spec,
            params: params.clone(),
            encoder: Encoder::new(params),
        })
    }

    /// The spec.
    pub fn spec(&self) -> &StepSpec {
        &self.spec
    }

    /// Encrypts one token's embedding (`d_model` values) in the step layout.
    ///
    /// # Errors
    /// A wrong width or an encryption error.
    pub fn encrypt_token(&self, enc: &mut Encryptor, embedding: &[f64]) -> Result<Ciphertext> {
        let packed = self.spec.layout.pack_token(embedding)?;
        let pt = self.encoder.encode(
            &packed,
            self.params.max_log_slots(),
            self.spec.level,
            self.params.default_scale(),
        )?;
        Ok(enc.encrypt(&pt)?)
    }

    /// The logits (`vocab` values) of one step's logit ciphertexts.
    ///
    /// # Errors
    /// The wrong number of ciphertexts or a decryption error.
    pub fn decrypt_logits(&self, dec: &Decryptor, cts: &[Ciphertext]) -> Result<Vec<f64>> {
        let slots = cts
            .iter()
            .map(|c| Ok(self.encoder.decode(&dec.decrypt(c)?)?))
            .collect::<Result<Vec<_>>>()?;
        self.spec.layout.unpack_logits(&slots)
    }
}
