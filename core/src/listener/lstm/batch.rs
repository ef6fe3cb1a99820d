//! Offline and on a training thread: the batched forward and backward passes.
//!
//! A [`Workspace`] holds every buffer of one batch shape: the time-major input, each layer's
//! tape (activated gates, cell and hidden states of every step), the gradients flowing back, and
//! a gradient vector laid out like the parameters. It is sized once for a batch capacity; a call
//! with more sequences grows it (allocating), any other call allocates nothing of its own (the
//! `gemm` crate may allocate its packing scratch, see [`super::product`]).
//!
//! # Layout and products
//! Sequences are time-major inside (`T × B × width`), so that one step of the batch is one
//! contiguous `B × width` matrix. Per layer:
//! - **forward**: the input projection of all steps is one product (`TB × D · D × 4H`), or for
//!   the decoder's repeated embedding one `B × D · D × 4H` product copied to every step; each
//!   step then adds `h_{t−1} · R` (`B × H · H × 4H`) and runs the cell;
//! - **backward through time**, last step first: the cell's backward pass gives `dz_t`, and
//!   `dz_t · Rᵀ` joins the gradient of `h_{t−1}`; after the loop, `dR = Hᵀ_{0..T−1} · dZ_{1..T}`,
//!   `dW = Xᵀ · dZ`, `db = Σ dZ` and the input's gradient `dZ · Wᵀ` are one product each (for the
//!   repeated embedding, the steps' `dz` are summed first).

use super::cell::{self, MulAdd};
use super::isa::{Isa, Specialised};
use super::network::{Layer, LayerMut, Network};
use super::peak::PeakLoss;
use super::product::{product, View};
use crate::listener::config::Activation;

/// One layer's record of a forward pass, time-major.
#[derive(Clone, Debug)]
struct Tape {
    /// Activated gates i, f, g, o of every step, `T × B × 4H`.
    gates: Vec<f32>,
    /// Cell states, `T × B × H`.
    c: Vec<f32>,
    /// Hidden states (the layer's output sequence), `T × B × H`.
    h: Vec<f32>,
}

/// What a layer reads.
#[derive(Clone, Copy)]
enum Input<'a> {
    /// A different input at every step, `T × B × D`.
    Sequence(&'a [f32]),
    /// The same `B × D` input at every step (the decoder's repeated embedding).
    Repeated(&'a [f32]),
}

/// One training batch: what the network reads and what its output should be. Sequences are
/// batch-major (`b × T × n_bands`), in normalised units.
#[derive(Clone, Copy, Debug)]
pub struct Example<'a> {
    /// The sequences the network reads.
    pub input: &'a [f32],
    /// The reconstruction wanted, laid out like `input`: the input itself for a plain
    /// autoencoder, the clean sequence when the input is corrupted (denoising).
    pub target: &'a [f32],
    /// Per-value weights of the squared error, laid out like `target` (to stress spectral
    /// peaks, say); `None` weighs every value alike.
    pub weights: Option<&'a [f32]>,
    /// An auxiliary loss on the embeddings of sequence pairs; `None` trains reconstruction
    /// alone.
    pub contrast: Option<Contrast>,
    /// Per sequence, its kind of sound when known. A contrast then leaves an anchor's other
    /// sequences of its kind out of its negatives (false-negative cancellation): a batch
    /// holds many moments of one kind, and pushing them apart teaches the embedding to tell
    /// recordings apart where a user asks it to hear one kind. `None` makes every other
    /// sequence a negative.
    pub kinds: Option<&'a [Option<u8>]>,
}

/// An auxiliary contrastive loss on the embeddings (NT-Xent, as SimCLR): the sequences come in
/// pairs (0 with 1, 2 with 3, …), two views of the same moment, and each embedding should be
/// nearer (in cosine similarity) to its partner than to every other sequence of its share of
/// the batch. For sequence `i` with positives `Pᵢ` weighted `wᵢₚ` (summing to one),
/// `ℓᵢ = −Σ_{p∈Pᵢ} wᵢₚ sᵢₚ/τ + log Σ_{j∈Nᵢ} exp(sᵢⱼ/τ)`. Without kinds, `Pᵢ` is its
/// partner alone and `Nᵢ` every `j ≠ i`; when the [`Example`] gives kinds, the other sequences
/// of `i`'s kind are left out of `Nᵢ` or joined to `Pᵢ`, with the weights
/// [`same_kind`](Self::same_kind) says. The loss added to the mean squared error is
/// `weight · mean ℓ`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Contrast {
    /// How much the contrastive loss counts against the reconstruction error.
    pub weight: f32,
    /// The temperature `τ`: smaller values punish near misses harder.
    pub temperature: f32,
    /// Which similarity `sᵢⱼ` the loss sharpens.
    pub geometry: Geometry,
    /// What an anchor's other sequences of its kind are to it when the [`Example`] gives
    /// kinds; without kinds it changes nothing.
    pub same_kind: SameKind,
}

/// What a [`Contrast`] makes of an anchor's other sequences of its kind of sound.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum SameKind {
    /// Left out of its negatives (false-negative cancellation): the softmax holds its partner
    /// and the sequences of other or unknown kinds, so one kind is not pushed apart, but
    /// nothing draws two recordings of a kind together unless they are partners.
    #[default]
    Cancelled,
    /// Its positives beside its partner (the supervised contrast of Khosla et al., 2020,
    /// `L_out`): the softmax holds every other sequence, and its target is spread evenly over
    /// the partner and the anchor's kind, so that every moment of a kind in the batch draws
    /// the anchor, not only the one partner.
    Positive,
    /// Its positives with a fixed share of the target: the softmax holds every other
    /// sequence, the partner keeps `1 − share` of the target and the anchor's other sequences
    /// of its kind split `share` evenly (the partner keeps all of it when the batch holds
    /// none). [`Positive`](Self::Positive) gives a kind of `n` moments `n/(n + 1)` of the
    /// target, so a big kind's moments swamp the partner; a fixed share keeps the moment's own
    /// recording the main thing it is drawn to, whatever the kind's size. `share` lies in
    /// `[0, 1]`.
    Pulled(f32),
}

/// The similarity between two embeddings that a [`Contrast`] works in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Geometry {
    /// The cosine of the raw embeddings (SimCLR's choice).
    #[default]
    Cosine,
    /// Minus the plugin's normalised squared distance in whitened principal coordinates,
    /// `sᵢⱼ = −‖P(eᵢ − eⱼ)‖² / 2k`, where `P`'s `k` rows are the axes divided by the root of
    /// their variance ([`Workspace::set_whitening`]): the geometry the learned-sound similarity
    /// reads (see `outputs::learned`), so that what the loss separates is what the user sees
    /// separated.
    Whitened,
}

impl<'a> Example<'a> {
    /// The plain autoencoder's batch: reconstruct `x`, every value weighed alike.
    pub fn plain(x: &'a [f32]) -> Self {
        Self {
            input: x,
            target: x,
            weights: None,
            contrast: None,
            kinds: None,
        }
    }

    /// The sequences `range` of the batch, `sequence` values each.
    pub(crate) fn sequences(&self, range: std::ops::Range<usize>, sequence: usize) -> Self {
        let values = range.start * sequence..range.end * sequence;
        Self {
            input: &self.input[values.clone()],
            target: &self.target[values.clone()],
            weights: self.weights.map(|w| &w[values]),
            contrast: self.contrast,
            kinds: self.kinds.map(|k| &k[range]),
        }
    }
}

/// NT-Xent over the cosines of the `b` embeddings `e` (`b × h`), negatives as `kinds` leave
/// them (see [`softmax_pairs`]): adds `dℓ/de`, scaled for a batch of `total`, to `d` and
/// returns `weight · Σ ℓᵢ`. Allocation-free.
fn cosine_contrast(
    (e, d): (&[f32], &mut [f32]),
    (b, h): (usize, usize),
    kinds: Option<&[Option<u8>]>,
    c: Contrast,
    total: usize,
) -> f64 {
    let tau = c.temperature;
    let norm = |i: usize| -> f32 {
        e[i * h..][..h]
            .iter()
            .map(|v| v * v)
            .sum::<f32>()
            .sqrt()
            .max(1e-12)
    };
    let cosine = |i: usize, j: usize| -> f32 {
        let dot: f32 = e[i * h..][..h]
            .iter()
            .zip(&e[j * h..][..h])
            .map(|(x, y)| x * y)
            .sum();
        dot / (norm(i) * norm(j))
    };
    // dL/dz for the unit vectors z = e/‖e‖, accumulated into `d`, then projected.
    let scale = c.weight / total as f32;
    let loss = softmax_pairs(
        b,
        kinds,
        c.same_kind,
        |i, j| cosine(i, j) / tau,
        |i, j, g| {
            let g = scale * g / tau;
            // s_ij = z_i·z_j: z_j reaches z_i's gradient and z_i reaches z_j's.
            let (ni, nj) = (norm(i), norm(j));
            for k in 0..h {
                d[i * h + k] += g * e[j * h + k] / nj;
                d[j * h + k] += g * e[i * h + k] / ni;
            }
        },
    );
    // Through the normalisation: de = (dz − z (z·dz)) / ‖e‖.
    for i in 0..b {
        let ni = norm(i);
        let row = &mut d[i * h..][..h];
        let along: f32 = row
            .iter()
            .zip(&e[i * h..][..h])
            .map(|(g, x)| g * x / ni)
            .sum();
        for (g, x) in row.iter_mut().zip(&e[i * h..][..h]) {
            *g = (*g - x / ni * along) / ni;
        }
    }
    f64::from(c.weight) * loss
}

/// NT-Xent over `sᵢⱼ = −‖zᵢ − zⱼ‖² / 2k` of the `b` whitened embeddings `z` (`b × k`),
/// negatives as `kinds` leave them (see [`softmax_pairs`]): sets `dz` to `dℓ/dz`, scaled for
/// a batch of `total`, and returns `weight · Σ ℓᵢ`. Allocation-free.
fn whitened_contrast(
    (z, dz): (&[f32], &mut [f32]),
    (b, k): (usize, usize),
    kinds: Option<&[Option<u8>]>,
    c: Contrast,
    total: usize,
) -> f64 {
    dz.fill(0.0);
    let tau = c.temperature;
    let norm = 1.0 / (2 * k) as f32;
    let similarity = |i: usize, j: usize| -> f32 {
        -norm
            * z[i * k..][..k]
                .iter()
                .zip(&z[j * k..][..k])
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
    };
    let scale = c.weight / total as f32;
    let loss = softmax_pairs(
        b,
        kinds,
        c.same_kind,
        |i, j| similarity(i, j) / tau,
        |i, j, g| {
            // ∂sᵢⱼ/∂zᵢ = −(zᵢ − zⱼ)/k = −∂sᵢⱼ/∂zⱼ.
            let g = scale * g / tau * 2.0 * norm;
            for r in 0..k {
                let diff = z[i * k + r] - z[j * k + r];
                dz[i * k + r] -= g * diff;
                dz[j * k + r] += g * diff;
            }
        },
    );
    f64::from(c.weight) * loss
}

/// The NT-Xent sum over the pairs (0 with 1, 2 with 3, …) of `b` sequences with logits
/// `logit(i, j)`: returns `Σᵢ ℓᵢ` and calls `gradient(i, j, ∂ℓᵢ/∂logitᵢⱼ)` for every `j` in
/// `i`'s softmax. Without `kinds` that softmax holds every `j ≠ i` and its target is `i`'s
/// partner; with them, `i`'s other sequences of its kind leave the softmax or share its
/// target, as `same_kind` says (see [`Contrast`] and [`SameKind`]). An odd last sequence is not
/// an anchor. Allocation-free.
fn softmax_pairs(
    b: usize,
    kinds: Option<&[Option<u8>]>,
    same_kind: SameKind,
    logit: impl Fn(usize, usize) -> f32,
    mut gradient: impl FnMut(usize, usize, f32),
) -> f64 {
    let of_a_kind = |i: usize, j: usize| kinds.is_some_and(|k| k[i].is_some() && k[i] == k[j]);
    let kind_mates_join = same_kind != SameKind::Cancelled;
    let mut loss = 0.0f64;
    for i in 0..b / 2 * 2 {
        let partner = i ^ 1;
        let kind_mate = |j: usize| j != i && j != partner && of_a_kind(i, j);
        let counted = |j: &usize| *j != i && (kind_mates_join || !kind_mate(*j));
        let kind_mates = if kind_mates_join {
            (0..b).filter(|&j| kind_mate(j)).count()
        } else {
            0
        };
        // The target's weight on the partner and on each kind mate; they sum to one.
        let (partner_weight, mate_weight) = match same_kind {
            _ if kind_mates == 0 => (1.0, 0.0),
            SameKind::Pulled(share) => (1.0 - share, share / kind_mates as f32),
            _ => {
                let even = 1.0 / (kind_mates + 1) as f32;
                (even, even)
            }
        };
        let target_weight = |j: usize| match j {
            _ if j == partner => partner_weight,
            _ if kind_mate(j) => mate_weight,
            _ => 0.0,
        };
        // Softmax over the counted j, in two passes (max, then sum), and the target's logit.
        let top = (0..b)
            .filter(counted)
            .map(|j| logit(i, j))
            .fold(f32::NEG_INFINITY, f32::max);
        let (sum, target_logit) = (0..b).filter(counted).fold((0.0f32, 0.0f32), |(s, t), j| {
            let l = logit(i, j);
            (s + (l - top).exp(), t + target_weight(j) * l)
        });
        loss += f64::from(top + sum.ln() - target_logit);
        for j in (0..b).filter(counted) {
            let p = (logit(i, j) - top).exp() / sum;
            gradient(i, j, p - target_weight(j));
        }
    }
    loss
}

/// The buffers of one batch shape (see the module documentation).
#[derive(Clone, Debug)]
pub struct Workspace {
    /// Sequences the buffers hold.
    capacity: usize,
    /// Steps per sequence.
    steps: usize,
    /// The instruction set the cell loops run with.
    isa: Isa,
    /// The batch, time-major: `T × B × n_bands`.
    input: Vec<f32>,
    /// The reconstruction wanted, time-major like `input`; read only by training.
    target: Vec<f32>,
    /// The squared error's per-value weights, time-major like `input`.
    weights: Vec<f32>,
    /// Whether `weights` applies to the loaded batch (otherwise every value weighs alike).
    weighted: bool,
    /// The contrastive loss's gradient with respect to the embeddings, `B × latent`; all zero
    /// when the batch has no [`Contrast`].
    d_embedding: Vec<f32>,
    /// The rows of `P` of a [`Geometry::Whitened`] contrast, `k × latent`; empty until
    /// [`set_whitening`](Self::set_whitening).
    whitening: Vec<f32>,
    /// The whitened embeddings `P·e` of the loaded batch, `B × k`.
    whitened: Vec<f32>,
    /// The contrastive loss's gradient with respect to `whitened`, `B × k`.
    d_whitened: Vec<f32>,
    /// The peak-band cross-entropy joining the squared error, when set
    /// ([`set_peak_loss`](Self::set_peak_loss)).
    peak_loss: Option<PeakLoss>,
    /// One tape per layer held by the network.
    tapes: Vec<Tape>,
    /// Pre-activation gradients of the current layer, `T × B × 4H`.
    dz: Vec<f32>,
    /// Gradient with respect to the current layer's output sequence, `T × B × H`.
    d_out: Vec<f32>,
    /// Gradient with respect to the current layer's input, `T × B × D` (or `B × D`).
    d_in: Vec<f32>,
    /// Gradient reaching the cell state from the next step, `B × H`.
    dc: Vec<f32>,
    /// The steps' `dz` summed, for a repeated input, `B × 4H`.
    dz_sum: Vec<f32>,
    /// The loss's gradient with respect to every parameter, laid out like them.
    grads: Vec<f32>,
}

impl Workspace {
    /// Buffers for batches of up to `capacity` sequences through `net`. Allocates.
    pub fn new(net: &Network, capacity: usize) -> Self {
        let cfg = net.config();
        let (t, b) = (cfg.steps, capacity.max(1));
        let layers: Vec<Layer> = (0..net.layer_count()).map(|i| net.layer(i)).collect();
        let widest = layers
            .iter()
            .map(|l| l.input.max(l.units))
            .max()
            .unwrap_or(0);
        let widest_units = layers.iter().map(|l| l.units).max().unwrap_or(0);
        Self {
            capacity: b,
            steps: t,
            isa: Isa::detect(),
            input: vec![0.0; t * b * cfg.n_bands],
            target: vec![0.0; t * b * cfg.n_bands],
            weights: vec![0.0; t * b * cfg.n_bands],
            weighted: false,
            d_embedding: vec![0.0; b * cfg.latent_dim()],
            whitening: Vec::new(),
            whitened: Vec::new(),
            d_whitened: Vec::new(),
            peak_loss: None,
            tapes: layers
                .iter()
                .map(|l| Tape {
                    gates: vec![0.0; t * b * 4 * l.units],
                    c: vec![0.0; t * b * l.units],
                    h: vec![0.0; t * b * l.units],
                })
                .collect(),
            dz: vec![0.0; t * b * 4 * widest_units],
            d_out: vec![0.0; t * b * widest],
            d_in: vec![0.0; t * b * widest],
            dc: vec![0.0; b * widest_units],
            dz_sum: vec![0.0; b * 4 * widest_units],
            grads: vec![0.0; net.params().len()],
        }
    }

    /// Grows the buffers when `b` sequences do not fit. Allocates only then.
    fn reserve(&mut self, net: &Network, b: usize) {
        if b > self.capacity || self.tapes.len() != net.layer_count() {
            let whitening = std::mem::take(&mut self.whitening);
            let peak_loss = self.peak_loss.take();
            *self = Self::new(net, b.max(self.capacity));
            self.set_whitening(whitening);
            self.peak_loss = peak_loss;
        }
    }

    /// Sets the rows of `P` that a [`Geometry::Whitened`] contrast measures with: `k` rows of
    /// the embedding's length, each a principal axis scaled as
    /// [`Pca::partial_whitening`](crate::pca::Pca::partial_whitening) makes them (at strength 1,
    /// divided by the root of its variance). Allocates the batch's whitened coordinates.
    pub fn set_whitening(&mut self, rows: Vec<f32>) {
        let latent = self.d_embedding.len() / self.capacity;
        assert!(
            latent > 0 && rows.len().is_multiple_of(latent),
            "whitening rows must be whole embeddings"
        );
        self.whitened = vec![0.0; self.capacity * (rows.len() / latent)];
        self.d_whitened = self.whitened.clone();
        self.whitening = rows;
    }

    /// Sets the peak-band cross-entropy that joins the squared error of every later batch
    /// (`None` removes it): the losses returned then add `weight · Σ ℓ · n_bands` over the
    /// batch's frames, so that dividing by its values gives `mse + weight · mean ℓ`.
    ///
    /// # Panics
    /// If the loss's bands are not the network's.
    pub fn set_peak_loss(&mut self, peak_loss: Option<PeakLoss>) {
        let n = self.input.len() / (self.capacity * self.steps);
        assert!(
            peak_loss.as_ref().is_none_or(|p| p.n_bands() == n),
            "the peak loss must have the network's {n} bands"
        );
        self.peak_loss = peak_loss;
    }

    /// Copies `b` batch-major sequences (`b × T × n_bands`) into the time-major input.
    fn load(&mut self, net: &Network, x: &[f32], b: usize) {
        self.reserve(net, b);
        let (t_steps, n) = (self.steps, net.config().n_bands);
        assert!(x.len() >= b * t_steps * n, "batch slice too short");
        swap_major(x, &mut self.input, b, t_steps, n);
    }

    /// The embeddings of `b` normalised sequences (`b × T × n_bands`, batch-major) into `out`
    /// (`b × latent`). Allocation-free once the workspace holds `b` sequences.
    ///
    /// # Panics
    /// If a slice is too short.
    pub fn encode(&mut self, net: &Network, x: &[f32], b: usize, out: &mut [f32]) {
        self.load(net, x, b);
        let encoder = net.config().encoder.len();
        self.forward(net, b, encoder);
        let h = net.layer(encoder - 1).units;
        out[..b * h].copy_from_slice(last_step(&self.tapes[encoder - 1], self.steps, b, h));
    }

    /// The reconstructions of `b` normalised sequences into `out` (`b × T × n_bands`,
    /// batch-major, normalised units). Allocation-free once the workspace holds `b` sequences.
    ///
    /// # Panics
    /// If the network holds no decoder, or a slice is too short.
    pub fn reconstruct(&mut self, net: &Network, x: &[f32], b: usize, out: &mut [f32]) {
        assert!(net.has_decoder(), "reconstruction needs the decoder");
        self.load(net, x, b);
        self.forward(net, b, net.layer_count());
        let (t_steps, n) = (self.steps, net.config().n_bands);
        swap_major(&self.tapes[net.layer_count() - 1].h, out, t_steps, b, n);
    }

    /// Forward and backward for `b` sequences of a batch of `total`: the sum of squared
    /// reconstruction errors over these sequences, with [`grads`](Self::grads) set to the
    /// gradient of the batch's mean squared error (over `total × T × n_bands` values) that these
    /// sequences contribute. The plain autoencoder's case of
    /// [`gradients_for`](Self::gradients_for). Allocation-free once the workspace holds `b`
    /// sequences (the `gemm` crate's packing scratch aside).
    ///
    /// # Panics
    /// If the network holds no decoder, or a slice is too short.
    pub fn gradients(&mut self, net: &Network, x: &[f32], b: usize, total: usize) -> f64 {
        self.gradients_for(net, Example::plain(x), b, total)
    }

    /// As [`gradients`](Self::gradients) for any [`Example`]: the error is the output's
    /// distance from `example.target`, each squared error times its weight, and with a
    /// [`Contrast`] its loss joins in. Returns the sum of (weighted) squared errors plus
    /// `weight · Σ ℓᵢ · T · n_bands`, so that dividing by the batch's values gives
    /// `mse + weight · mean ℓ`. Allocation-free once the workspace holds `b` sequences, whatever
    /// the example asks (the `gemm` crate aside).
    ///
    /// # Panics
    /// If the network holds no decoder, or a slice is too short.
    pub fn gradients_for(
        &mut self,
        net: &Network,
        example: Example,
        b: usize,
        total: usize,
    ) -> f64 {
        let contrastive = self.forward_for(net, example, b, total);
        let sse = self.squared_error(net, b);
        let peak = self.backward(net, b, total);
        sse + contrastive + peak
    }

    /// The loss [`gradients_for`](Self::gradients_for) returns, from the forward pass alone:
    /// [`grads`](Self::grads) is left as it was. For held-out losses. Allocation-free once the
    /// workspace holds `b` sequences.
    ///
    /// # Panics
    /// If the network holds no decoder, or a slice is too short.
    pub fn loss_for(&mut self, net: &Network, example: Example, b: usize, total: usize) -> f64 {
        let contrastive = self.forward_for(net, example, b, total);
        self.squared_error(net, b) + contrastive + self.peak_term(net, b)
    }

    /// The peak-band cross-entropy of the loaded batch in squared-error units,
    /// `weight · Σ ℓ · n_bands`; 0 without one. (A training step gets it from
    /// [`backward`](Self::backward), which computes it with its gradient.)
    fn peak_term(&self, net: &Network, b: usize) -> f64 {
        let Some(peak_loss) = &self.peak_loss else {
            return 0.0;
        };
        let values = self.steps * b * net.config().n_bands;
        let y = &self.tapes[net.layer_count() - 1].h[..values];
        let sum = peak_loss.cross_entropy(y, &self.target[..values], None);
        f64::from(peak_loss.weight) * sum * net.config().n_bands as f64
    }

    /// Loads `example` and runs it forward, with the contrast's gradient on the embeddings set
    /// (zero without a contrast); returns the contrastive loss in squared-error units,
    /// `weight · Σ ℓᵢ · T · n_bands`, so that the callers' mean is `mse + weight · mean ℓ`.
    fn forward_for(&mut self, net: &Network, example: Example, b: usize, total: usize) -> f64 {
        assert!(net.has_decoder(), "training needs the decoder");
        self.load(net, example.input, b);
        let (t_steps, n) = (self.steps, net.config().n_bands);
        assert!(
            example.target.len() >= b * t_steps * n,
            "target slice too short"
        );
        swap_major(example.target, &mut self.target, b, t_steps, n);
        self.weighted = example.weights.is_some();
        if let Some(w) = example.weights {
            assert!(w.len() >= b * t_steps * n, "weight slice too short");
            swap_major(w, &mut self.weights, b, t_steps, n);
        }
        self.forward(net, b, net.layer_count());
        if let Some(kinds) = example.kinds {
            assert!(kinds.len() >= b, "kind slice too short");
        }
        let contrastive = match example.contrast {
            Some(contrast) => self.contrast(net, contrast, example.kinds, b, total),
            None => {
                self.d_embedding.fill(0.0);
                0.0
            }
        };
        contrastive * (t_steps * n) as f64
    }

    /// The sum of (weighted) squared errors of the loaded batch's output against its target.
    fn squared_error(&self, net: &Network, b: usize) -> f64 {
        let values = self.steps * b * net.config().n_bands;
        let y = &self.tapes[net.layer_count() - 1].h[..values];
        let errors = y.iter().zip(&self.target[..values]).map(|(&y, &x)| y - x);
        if self.weighted {
            let weights = &self.weights[..values];
            errors
                .zip(weights)
                .map(|(e, &w)| f64::from(w * e * e))
                .sum()
        } else {
            errors.map(|e| f64::from(e * e)).sum()
        }
    }

    /// The contrastive loss of the loaded batch's embeddings (see [`Contrast`]): sets
    /// `d_embedding` to its gradient, scaled for a batch of `total`, and returns
    /// `weight · Σ ℓᵢ` over these `b` sequences (an odd last sequence has no partner and is
    /// only a negative), with negatives as `kinds` leave them. Allocation-free.
    fn contrast(
        &mut self,
        net: &Network,
        contrast: Contrast,
        kinds: Option<&[Option<u8>]>,
        b: usize,
        total: usize,
    ) -> f64 {
        let encoder = net.config().encoder.len();
        let h = net.layer(encoder - 1).units;
        let e = last_step(&self.tapes[encoder - 1], self.steps, b, h);
        let d = &mut self.d_embedding[..b * h];
        d.fill(0.0);
        if b < 2 {
            return 0.0;
        }
        match contrast.geometry {
            Geometry::Cosine => cosine_contrast((e, d), (b, h), kinds, contrast, total),
            Geometry::Whitened => {
                let p = &self.whitening;
                let k = p.len() / h;
                assert!(k > 0, "a whitened contrast needs Workspace::set_whitening");
                let z = &mut self.whitened[..b * k];
                for (zi, ei) in z.chunks_exact_mut(k).zip(e.chunks_exact(h)) {
                    for (v, row) in zi.iter_mut().zip(p.chunks_exact(h)) {
                        *v = row.iter().zip(ei).map(|(a, x)| a * x).sum();
                    }
                }
                let dz = &mut self.d_whitened[..b * k];
                let loss = whitened_contrast((z, dz), (b, k), kinds, contrast, total);
                // Back through P: de_i = Pᵀ dz_i.
                for (di, dzi) in d.chunks_exact_mut(h).zip(dz.chunks_exact(k)) {
                    for (row, &g) in p.chunks_exact(h).zip(dzi) {
                        for (dv, &a) in di.iter_mut().zip(row) {
                            *dv += g * a;
                        }
                    }
                }
                loss
            }
        }
    }

    /// The gradient vector [`gradients`](Self::gradients) wrote.
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    /// The gradient vector, for the trainer to add a penalty's gradient to. Allocation-free.
    pub(crate) fn grads_mut(&mut self) -> &mut [f32] {
        &mut self.grads
    }

    /// Runs the first `layers` layers over the loaded input.
    fn forward(&mut self, net: &Network, b: usize, layers: usize) {
        let t_steps = self.steps;
        for li in 0..layers {
            let (below, rest) = self.tapes.split_at_mut(li);
            let input = layer_input(net, &self.input, below, li, b, t_steps);
            forward_layer(
                self.isa,
                net.activation(),
                net.layer(li),
                input,
                b,
                t_steps,
                &mut rest[0],
            );
        }
    }

    /// Backward through every layer after [`forward`](Self::forward), from the (weighted)
    /// squared errors against the loaded target, the peak loss when set, and the embeddings'
    /// own gradient. Returns the peak loss in squared-error units, as
    /// [`peak_term`](Self::peak_term) measures it (0 without one), computed on the way.
    fn backward(&mut self, net: &Network, b: usize, total: usize) -> f64 {
        let Workspace {
            steps,
            isa,
            input,
            target,
            weights,
            weighted,
            d_embedding,
            peak_loss,
            tapes,
            dz,
            d_out,
            d_in,
            dc,
            dz_sum,
            grads,
            ..
        } = self;
        let (t_steps, n) = (*steps, net.config().n_bands);
        let encoder = net.config().encoder.len();
        let layers = net.layer_count();
        // The loss: mean over the whole batch's values; its gradient for these sequences.
        let scale = 2.0 / (total * t_steps * n) as f32;
        let y = &tapes[layers - 1].h[..t_steps * b * n];
        let pairs = d_out.iter_mut().zip(y).zip(&target[..t_steps * b * n]);
        if !*weighted {
            for ((d, &y), &x) in pairs {
                *d = scale * (y - x);
            }
        } else {
            for (((d, &y), &x), &w) in pairs.zip(&weights[..t_steps * b * n]) {
                *d = scale * w * (y - x);
            }
        }
        let peak = peak_loss.as_ref().map_or(0.0, |peak_loss| {
            // `weight · n · Σℓ` over the batch's `total · T · n` values.
            let scale = peak_loss.weight / (total * t_steps) as f32;
            let sum = peak_loss.cross_entropy(
                y,
                &target[..t_steps * b * n],
                Some((&mut d_out[..t_steps * b * n], scale)),
            );
            f64::from(peak_loss.weight) * sum * n as f64
        });
        for li in (0..layers).rev() {
            let layer = net.layer(li);
            let input = layer_input(net, input, &tapes[..li], li, b, t_steps);
            let buffers = Backward {
                dz,
                d_out,
                dc,
                dz_sum,
                d_in: (li > 0).then_some(&mut d_in[..]),
            };
            backward_layer(
                *isa,
                net.activation(),
                layer,
                input,
                b,
                t_steps,
                &tapes[li],
                buffers,
                net.layer_mut(grads, li),
            );
            if li == encoder {
                // The encoder's last layer is read at its last step only.
                let units = net.layer(li - 1).units;
                d_out[..t_steps * b * units].fill(0.0);
                let last = &mut d_out[(t_steps - 1) * b * units..][..b * units];
                last.copy_from_slice(&d_in[..b * units]);
                // The embedding's own loss, when there is one.
                for (g, &extra) in last.iter_mut().zip(&d_embedding[..b * units]) {
                    *g += extra;
                }
            } else {
                std::mem::swap(d_out, d_in);
            }
        }
        peak
    }
}

/// Copies an `outer × inner` grid of `n`-value rows into the `inner × outer` grid: batch-major
/// sequences to time-major ones (`outer` = B, `inner` = T), or back (`outer` = T, `inner` = B).
fn swap_major(src: &[f32], dst: &mut [f32], outer: usize, inner: usize, n: usize) {
    for i in 0..outer {
        for j in 0..inner {
            dst[(j * outer + i) * n..][..n].copy_from_slice(&src[(i * inner + j) * n..][..n]);
        }
    }
}

/// The hidden states of the last step of a layer of `units` units recorded on `tape`, `B × H`.
fn last_step(tape: &Tape, t_steps: usize, b: usize, units: usize) -> &[f32] {
    &tape.h[(t_steps - 1) * b * units..][..b * units]
}

/// What layer `li` reads: the data (`input`, time-major), the encoder's last state repeated
/// (the first decoder layer), or the output sequence of the layer below (`below` holds the
/// tapes of the layers under `li`).
fn layer_input<'a>(
    net: &Network,
    input: &'a [f32],
    below: &'a [Tape],
    li: usize,
    b: usize,
    t_steps: usize,
) -> Input<'a> {
    if li == 0 {
        Input::Sequence(input)
    } else if li == net.config().encoder.len() {
        let units = net.layer(li - 1).units;
        Input::Repeated(last_step(&below[li - 1], t_steps, b, units))
    } else {
        Input::Sequence(&below[li - 1].h)
    }
}

/// One layer's forward pass over `b` sequences, recorded on `tape`.
fn forward_layer(
    isa: Isa,
    activation: Activation,
    layer: Layer,
    input: Input,
    b: usize,
    t_steps: usize,
    tape: &mut Tape,
) {
    let (d, h) = (layer.input, layer.units);
    let g4 = 4 * h;
    let z = &mut tape.gates[..t_steps * b * g4];
    match input {
        Input::Sequence(x) => {
            let x = View::rows(x, t_steps * b, d);
            product(z, x, View::rows(layer.kernel, d, g4), false);
        }
        Input::Repeated(e) => {
            let (first, rest) = z.split_at_mut(b * g4);
            product(
                first,
                View::rows(e, b, d),
                View::rows(layer.kernel, d, g4),
                false,
            );
            for step in rest.chunks_exact_mut(b * g4) {
                step.copy_from_slice(first);
            }
        }
    }
    for t in 0..t_steps {
        let (h_done, h_rest) = tape.h.split_at_mut(t * b * h);
        let (c_done, c_rest) = tape.c.split_at_mut(t * b * h);
        let zt = &mut z[t * b * g4..][..b * g4];
        let c_prev = if t > 0 {
            let previous = &h_done[(t - 1) * b * h..][..b * h];
            product(
                zt,
                View::rows(previous, b, h),
                View::rows(layer.recurrent, h, g4),
                true,
            );
            Some(&c_done[(t - 1) * b * h..][..b * h])
        } else {
            None
        };
        let cells = CellsForward {
            z: zt,
            bias: layer.bias,
            c_prev,
            c: &mut c_rest[..b * h],
            h: &mut h_rest[..b * h],
            units: h,
        };
        // SAFETY: `isa` came from `Isa::detect`.
        unsafe { isa.run(activation, cells) };
    }
}

/// The buffers one layer's backward pass works in.
struct Backward<'a> {
    /// Pre-activation gradients, written: `T × B × 4H`.
    dz: &'a mut [f32],
    /// Gradient with respect to the output sequence, read (and added to through time).
    d_out: &'a mut [f32],
    /// Cell-state gradient between steps.
    dc: &'a mut [f32],
    /// Summed `dz` for a repeated input.
    dz_sum: &'a mut [f32],
    /// Where the input's gradient goes, unless the input is the data.
    d_in: Option<&'a mut [f32]>,
}

/// One layer's backward pass through time (see the module documentation).
#[allow(clippy::too_many_arguments)]
fn backward_layer(
    isa: Isa,
    activation: Activation,
    layer: Layer,
    input: Input,
    b: usize,
    t_steps: usize,
    tape: &Tape,
    buffers: Backward,
    grads: LayerMut,
) {
    let (d, h) = (layer.input, layer.units);
    let g4 = 4 * h;
    let Backward {
        dz,
        d_out,
        dc,
        dz_sum,
        d_in,
    } = buffers;
    let dz = &mut dz[..t_steps * b * g4];
    let dc = &mut dc[..b * h];
    dc.fill(0.0);
    for t in (0..t_steps).rev() {
        let c_prev = (t > 0).then(|| &tape.c[(t - 1) * b * h..][..b * h]);
        let (d_before, d_rest) = d_out.split_at_mut(t * b * h);
        let dzt = &mut dz[t * b * g4..][..b * g4];
        let cells = CellsBackward {
            gates: &tape.gates[t * b * g4..][..b * g4],
            c: &tape.c[t * b * h..][..b * h],
            c_prev,
            dh: &d_rest[..b * h],
            dc: &mut *dc,
            dz: &mut *dzt,
            units: h,
        };
        // SAFETY: `isa` came from `Isa::detect`.
        unsafe { isa.run(activation, cells) };
        if t > 0 {
            let recurrent_t = View::rows(layer.recurrent, h, g4).t();
            let d_previous = &mut d_before[(t - 1) * b * h..][..b * h];
            product(d_previous, View::rows(dzt, b, g4), recurrent_t, true);
        }
    }
    if t_steps > 1 {
        let rows = (t_steps - 1) * b;
        let previous = View::rows(&tape.h[..rows * h], rows, h).t();
        product(
            grads.recurrent,
            previous,
            View::rows(&dz[b * g4..], rows, g4),
            false,
        );
    } else {
        grads.recurrent.fill(0.0);
    }
    grads.bias.fill(0.0);
    for row in dz.chunks_exact(g4) {
        for (g, &v) in grads.bias.iter_mut().zip(row) {
            *g += v;
        }
    }
    let kernel_t = View::rows(layer.kernel, d, g4).t();
    match input {
        Input::Sequence(x) => {
            let rows = t_steps * b;
            let xt = View::rows(&x[..rows * d], rows, d).t();
            product(grads.kernel, xt, View::rows(dz, rows, g4), false);
            if let Some(d_in) = d_in {
                product(d_in, View::rows(dz, rows, g4), kernel_t, false);
            }
        }
        Input::Repeated(e) => {
            let dz_sum = &mut dz_sum[..b * g4];
            dz_sum.copy_from_slice(&dz[..b * g4]);
            for step in dz[b * g4..].chunks_exact(b * g4) {
                for (s, &v) in dz_sum.iter_mut().zip(step) {
                    *s += v;
                }
            }
            let et = View::rows(e, b, d).t();
            product(grads.kernel, et, View::rows(dz_sum, b, g4), false);
            if let Some(d_in) = d_in {
                product(d_in, View::rows(dz_sum, b, g4), kernel_t, false);
            }
        }
    }
}

/// [`cell::step_recorded`] over the `b` rows of one step: a job for [`Isa::run`].
struct CellsForward<'a> {
    /// Products of the step, `B × 4H`; left holding the activated gates.
    z: &'a mut [f32],
    /// The layer's bias, `4H`.
    bias: &'a [f32],
    /// The previous step's cell states, `B × H` (`None` on the first step).
    c_prev: Option<&'a [f32]>,
    /// This step's cell states, `B × H`.
    c: &'a mut [f32],
    /// This step's hidden states, `B × H`.
    h: &'a mut [f32],
    /// Units H.
    units: usize,
}

impl Specialised for CellsForward<'_> {
    #[inline(always)]
    fn run<M: MulAdd, const RELU: bool>(self, _: Isa) {
        let units = self.units;
        let rows = self
            .z
            .chunks_exact_mut(4 * units)
            .zip(self.c.chunks_exact_mut(units))
            .zip(self.h.chunks_exact_mut(units));
        for (s, ((z, c), h)) in rows.enumerate() {
            let previous = self.c_prev.map(|p| &p[s * units..][..units]);
            cell::step_recorded::<M, RELU>(z, self.bias, previous, c, h);
        }
    }
}

/// [`cell::step_backward`] over the `b` rows of one step: a job for [`Isa::run`].
struct CellsBackward<'a> {
    /// The step's activated gates, `B × 4H`.
    gates: &'a [f32],
    /// The step's cell states, `B × H`.
    c: &'a [f32],
    /// The previous step's cell states (`None` on the first step).
    c_prev: Option<&'a [f32]>,
    /// Gradient with respect to the step's hidden states, `B × H`.
    dh: &'a [f32],
    /// Cell-state gradient, from the next step in, to the previous step out, `B × H`.
    dc: &'a mut [f32],
    /// Pre-activation gradients of the step, written, `B × 4H`.
    dz: &'a mut [f32],
    /// Units H.
    units: usize,
}

impl Specialised for CellsBackward<'_> {
    #[inline(always)]
    fn run<M: MulAdd, const RELU: bool>(self, _: Isa) {
        let units = self.units;
        let rows = self
            .gates
            .chunks_exact(4 * units)
            .zip(self.c.chunks_exact(units))
            .zip(self.dh.chunks_exact(units))
            .zip(self.dc.chunks_exact_mut(units))
            .zip(self.dz.chunks_exact_mut(4 * units));
        for (s, ((((g, c), dh), dc), dz)) in rows.enumerate() {
            let previous = self.c_prev.map(|p| &p[s * units..][..units]);
            cell::step_backward::<M, RELU>(g, c, previous, dh, dc, dz);
        }
    }
}
