//! Offline and on a training thread: minibatch steps of AdamW (or Adagrad, the original
//! Listener's optimiser) on the reconstruction error.
//!
//! A [`Trainer`] owns the network, the optimiser's moments and one [`Workspace`] per thread.
//! A step runs forward and backward (on two threads, each half of the batch, when asked),
//! clips the global gradient norm, and applies AdamW exactly as candle's `AdamW` does, so that a
//! run with this engine and one with candle follow the same path.

use super::batch::{Contrast, Example, Workspace};
use super::network::Network;
use super::peak::PeakLoss;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// The update rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Optimiser {
    /// AdamW as candle applies it: the recipe of every model this project trains.
    #[default]
    AdamW,
    /// Adagrad as Keras applies it (`v += g²`, `p −= lr·g / (√v + ε)`, accumulators starting at
    /// [`ADAGRAD_INITIAL_ACCUMULATOR`]): the original Listener's optimiser, to reproduce its
    /// recipe like for like. Ignores the betas and the weight decay.
    Adagrad,
}

/// Keras' starting value of Adagrad's squared-gradient accumulators.
pub const ADAGRAD_INITIAL_ACCUMULATOR: f32 = 0.1;

/// How to train.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainerConfig {
    /// The update rule.
    pub optimiser: Optimiser,
    /// Learning rate.
    pub learning_rate: f64,
    /// Decoupled weight decay (the parameter shrinks by `learning_rate × weight_decay` a step).
    pub weight_decay: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the second moment's root: keeps the step bounded where a gradient is zero.
    pub eps: f64,
    /// Global gradient-norm limit; relu cells are unbounded and can explode without it.
    pub clip_grad_norm: Option<f64>,
    /// Threads a step uses: 1, or 2 (each takes half the batch).
    pub threads: usize,
}

impl Default for TrainerConfig {
    /// candle's `ParamsAdamW` defaults but a learning rate of 1e-3 and weight decay of 1e-4 (the
    /// training recipe), clipping at 1, one thread.
    fn default() -> Self {
        Self {
            optimiser: Optimiser::AdamW,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip_grad_norm: Some(1.0),
            threads: 1,
        }
    }
}

/// The most threads a step splits its batch over.
pub const MAX_THREADS: usize = 2;

/// A network being trained (see the module documentation).
#[derive(Debug)]
pub struct Trainer {
    /// The weights.
    net: Network,
    /// How to train.
    cfg: TrainerConfig,
    /// First moments, laid out like the parameters (unused by Adagrad).
    m: Vec<f32>,
    /// Second moments (Adagrad: the squared-gradient sums), laid out like the parameters.
    v: Vec<f32>,
    /// Steps taken.
    t: i32,
    /// One workspace per thread.
    workspaces: Vec<Workspace>,
    /// The second thread, when two are asked for.
    helper: Option<Helper>,
    /// The batch's gradient when two threads share it: their parts summed.
    grads: Vec<f32>,
    /// The weights a penalty pulls towards, if any (see [`anchor`](Trainer::anchor)).
    anchor: Option<Anchor>,
}

/// An L2-SP penalty `strength/2 · ‖w − weights‖²`: fine-tuning stays near the model it started
/// from.
#[derive(Debug)]
struct Anchor {
    /// The weights pulled towards, laid out like the parameters.
    weights: Vec<f32>,
    /// `λ`: the penalty's gradient is `λ·(w − weights)`.
    strength: f32,
}

impl Trainer {
    /// A trainer for `net` (which must hold its decoder), sized for batches of `batch`.
    /// Allocates, and starts the second thread when `cfg.threads` is 2.
    ///
    /// # Panics
    /// If `net` holds no decoder.
    pub fn new(net: Network, cfg: TrainerConfig, batch: usize) -> Self {
        assert!(net.has_decoder(), "training needs the decoder");
        let threads = cfg.threads.clamp(1, MAX_THREADS);
        let share = batch.div_ceil(threads).max(1);
        let n = net.params().len();
        Self {
            workspaces: (0..threads).map(|_| Workspace::new(&net, share)).collect(),
            helper: (threads > 1).then(Helper::start),
            net,
            cfg: TrainerConfig { threads, ..cfg },
            m: vec![0.0; n],
            v: vec![
                match cfg.optimiser {
                    Optimiser::AdamW => 0.0,
                    Optimiser::Adagrad => ADAGRAD_INITIAL_ACCUMULATOR,
                };
                n
            ],
            t: 0,
            grads: vec![0.0; if threads > 1 { n } else { 0 }],
            anchor: None,
        }
    }

    /// Adds an L2-SP penalty `strength/2 · ‖w − weights‖²` to every later loss, so that every
    /// gradient gains `strength·(w − weights)`: fine-tuning on a little data (a session's own
    /// audio) then stays near the model it started from, however one-sided the data. `weights`
    /// are laid out like [`Network::params`], usually the network's own before training; a
    /// strength of 0 removes the penalty. Takes `weights` without copying.
    ///
    /// # Panics
    /// If `weights` is not as long as the parameters.
    pub fn anchor(&mut self, weights: Vec<f32>, strength: f64) {
        assert_eq!(weights.len(), self.net.params().len(), "anchor length");
        self.anchor = (strength > 0.0).then_some(Anchor {
            weights,
            strength: strength as f32,
        });
    }

    /// Sets the whitening rows of a [`Geometry::Whitened`](super::Geometry::Whitened) contrast
    /// in every workspace (see [`Workspace::set_whitening`]). Allocates.
    pub fn set_whitening(&mut self, rows: &[f32]) {
        for workspace in &mut self.workspaces {
            workspace.set_whitening(rows.to_vec());
        }
    }

    /// Sets the peak-band cross-entropy in every workspace (see
    /// [`Workspace::set_peak_loss`]). Allocates.
    pub fn set_peak_loss(&mut self, peak_loss: Option<&PeakLoss>) {
        for workspace in &mut self.workspaces {
            workspace.set_peak_loss(peak_loss.cloned());
        }
    }

    /// The weights.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// Threads a step uses: 1 or 2.
    pub fn threads(&self) -> usize {
        self.cfg.threads
    }

    /// The weights, giving up the optimiser's state.
    pub fn into_network(self) -> Network {
        self.net
    }

    /// The mean squared error of `b` normalised sequences (`b × T × n_bands`, batch-major), plus
    /// the [`anchor`](Self::anchor)'s penalty if there is one, and its gradient with respect to
    /// every parameter (laid out like them), without updating.
    /// Allocation-free once the workspaces hold the batch (the `gemm` crate aside).
    ///
    /// # Panics
    /// If `b` is 0 or `x` holds fewer than `b` sequences.
    pub fn gradients(&mut self, x: &[f32], b: usize) -> (f64, &[f32]) {
        let loss = self.backward(Example::plain(x), b) + self.add_anchor();
        self.combine(b);
        (
            loss,
            batch_gradient(self.shares(b), &self.workspaces, &self.grads),
        )
    }

    /// One training step on `b` normalised sequences: gradient, clipping, update. Returns the
    /// mean squared error before the update. The plain autoencoder's case of
    /// [`step_on`](Self::step_on). Allocation-free and, with two threads, free of thread starts
    /// once the workspaces hold the batch (the `gemm` crate's packing scratch aside).
    ///
    /// # Panics
    /// As [`gradients`](Self::gradients).
    pub fn step(&mut self, x: &[f32], b: usize) -> f64 {
        self.step_on(Example::plain(x), b)
    }

    /// One training step on any [`Example`] of `b` sequences (a corrupted input with its clean
    /// target, weighted errors). Returns the mean (weighted) squared error before the update,
    /// plus the [`anchor`](Self::anchor)'s penalty if there is one.
    /// Allocation-free as [`step`](Self::step).
    ///
    /// # Panics
    /// If `b` is 0 or a slice of `example` holds fewer than `b` sequences.
    pub fn step_on(&mut self, example: Example, b: usize) -> f64 {
        let loss = self.backward(example, b) + self.add_anchor();
        let norm = self.combine(b).sqrt();
        let factor = match self.cfg.clip_grad_norm {
            Some(limit) if norm > limit && norm.is_finite() => (limit / norm) as f32,
            _ => 1.0,
        };
        self.t += 1;
        let update = Update::new(&self.cfg, self.t, factor);
        let shares = self.shares(b);
        let Trainer {
            net,
            m,
            v,
            workspaces,
            helper,
            grads,
            ..
        } = self;
        let params = net.params_mut();
        let batch = batch_gradient(shares, workspaces, grads);
        match (shares, helper) {
            (2, Some(helper)) => {
                // Each thread updates half of the parameters.
                let mid = params.len() / 2;
                let (params, params_tail) = params.split_at_mut(mid);
                let (grads, grads_tail) = batch.split_at(mid);
                let (m, m_tail) = m.split_at_mut(mid);
                let (v, v_tail) = v.split_at_mut(mid);
                let job = Job::Update {
                    update,
                    params: params_tail.as_mut_ptr(),
                    grads: grads_tail.as_ptr(),
                    m: m_tail.as_mut_ptr(),
                    v: v_tail.as_mut_ptr(),
                    len: params_tail.len(),
                };
                helper.run(job, || {
                    update.apply(params, grads, m, v);
                    0.0
                });
            }
            _ => update.apply(params, batch, m, v),
        }
        loss
    }

    /// Adds the [`anchor`](Self::anchor)'s gradient to the first workspace's share (so that
    /// [`combine`](Self::combine) counts it once) and returns its penalty; 0 without an anchor.
    /// Allocation-free.
    fn add_anchor(&mut self) -> f64 {
        let Some(anchor) = &self.anchor else {
            return 0.0;
        };
        let mut penalty = 0.0f64;
        let grads = self.workspaces[0].grads_mut();
        for ((g, &w), &w0) in grads.iter_mut().zip(self.net.params()).zip(&anchor.weights) {
            let d = w - w0;
            *g += anchor.strength * d;
            penalty += f64::from(d) * f64::from(d);
        }
        0.5 * f64::from(anchor.strength) * penalty
    }

    /// Workspaces a batch of `b` uses: two only when both get a sequence.
    fn shares(&self, b: usize) -> usize {
        self.workspaces.len().min(b)
    }

    /// Forward and backward over `b` sequences, split between the threads; returns the mean
    /// squared error, with each workspace holding its share's gradient.
    fn backward(&mut self, example: Example, b: usize) -> f64 {
        let cfg = self.net.config();
        let sequence = cfg.steps * cfg.n_bands;
        assert!(
            b > 0 && example.input.len() >= b * sequence,
            "batch slice too short"
        );
        let Trainer {
            net,
            workspaces,
            helper,
            ..
        } = self;
        let sse = match (workspaces.as_mut_slice(), helper) {
            ([first, second], Some(helper)) if b > 1 => {
                // An even split keeps contrastive pairs within one share.
                let split = (b.div_ceil(4) * 2).min(b - 1);
                let head = example.sequences(0..split, sequence);
                let tail = example.sequences(split..b, sequence);
                let job = Job::Gradients {
                    net: &*net,
                    workspace: second,
                    input: tail.input.as_ptr(),
                    target: tail.target.as_ptr(),
                    weights: tail.weights.map_or(std::ptr::null(), <[f32]>::as_ptr),
                    contrast: tail.contrast,
                    kinds: tail.kinds.map_or(std::ptr::null(), <[Option<u8>]>::as_ptr),
                    len: tail.input.len(),
                    b: b - split,
                    total: b,
                };
                helper.run(job, || first.gradients_for(net, head, split, b))
            }
            (workspaces, _) => workspaces[0].gradients_for(net, example, b, b),
        };
        sse / (b * sequence) as f64
    }

    /// The batch's gradient from the threads' shares: with two, their sum goes to `grads`
    /// (each thread summing half); with one, the workspace's own is the batch's. Returns its
    /// squared L2 norm.
    fn combine(&mut self, b: usize) -> f64 {
        let Trainer {
            workspaces,
            helper,
            grads,
            ..
        } = self;
        match (workspaces.as_slice(), helper) {
            ([first, second], Some(helper)) if b > 1 => {
                let (first, second) = (first.grads(), second.grads());
                let mid = grads.len() / 2;
                let (head, tail) = grads.split_at_mut(mid);
                let job = Job::Combine {
                    first: first[mid..].as_ptr(),
                    second: second[mid..].as_ptr(),
                    out: tail.as_mut_ptr(),
                    len: tail.len(),
                };
                helper.run(job, || sum_into(head, &first[..mid], &second[..mid]))
            }
            (workspaces, _) => workspaces[0]
                .grads()
                .iter()
                .map(|&g| f64::from(g) * f64::from(g))
                .sum(),
        }
    }
}

/// The batch's gradient once [`Trainer::combine`] has run for `shares` shares: the one
/// workspace's own, or the sum in `grads`.
fn batch_gradient<'a>(shares: usize, workspaces: &'a [Workspace], grads: &'a [f32]) -> &'a [f32] {
    match shares {
        1 => workspaces[0].grads(),
        _ => grads,
    }
}

/// `out = a + b`; returns the squared L2 norm of `out`.
fn sum_into(out: &mut [f32], a: &[f32], b: &[f32]) -> f64 {
    let mut norm = 0.0;
    for (o, (&x, &y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x + y;
        norm += f64::from(*o) * f64::from(*o);
    }
    norm
}

/// One update's constants. AdamW in candle's order of operations: moments, bias corrections,
/// decoupled decay, then the step; Adagrad as Keras: accumulate, then step. Both on the
/// gradient times `factor` (the clipping).
#[derive(Clone, Copy, Debug)]
struct Update {
    /// The rule.
    optimiser: Optimiser,
    /// First-moment decay.
    beta1: f32,
    /// Second-moment decay.
    beta2: f32,
    /// `1 − beta1`, rounded as candle rounds it.
    one_minus_beta1: f32,
    /// `1 − beta2`.
    one_minus_beta2: f32,
    /// First-moment bias correction, `1 / (1 − beta1^t)`.
    scale_m: f32,
    /// Second-moment bias correction.
    scale_v: f32,
    /// Decoupled weight decay, `1 − lr·λ`.
    decay: f32,
    /// Learning rate.
    lr: f32,
    /// Added to the second moment's root.
    eps: f32,
    /// Clipping factor for the gradient.
    factor: f32,
}

impl Update {
    /// The constants of step `t` (1-based).
    fn new(cfg: &TrainerConfig, t: i32, factor: f32) -> Self {
        Self {
            optimiser: cfg.optimiser,
            beta1: cfg.beta1 as f32,
            beta2: cfg.beta2 as f32,
            one_minus_beta1: (1.0 - cfg.beta1) as f32,
            one_minus_beta2: (1.0 - cfg.beta2) as f32,
            scale_m: (1.0 / (1.0 - cfg.beta1.powi(t))) as f32,
            scale_v: (1.0 / (1.0 - cfg.beta2.powi(t))) as f32,
            decay: (1.0 - cfg.learning_rate * cfg.weight_decay) as f32,
            lr: cfg.learning_rate as f32,
            eps: cfg.eps as f32,
            factor,
        }
    }

    /// Updates `params` and their moments from `grads` (all the same length).
    fn apply(&self, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) {
        if self.optimiser == Optimiser::Adagrad {
            for ((p, &g), v) in params.iter_mut().zip(grads).zip(v) {
                let g = g * self.factor;
                *v += g * g;
                *p -= self.lr * g / (v.sqrt() + self.eps);
            }
            return;
        }
        for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
            let g = g * self.factor;
            *m = *m * self.beta1 + g * self.one_minus_beta1;
            *v = *v * self.beta2 + g * g * self.one_minus_beta2;
            let m_hat = *m * self.scale_m;
            let v_hat = *v * self.scale_v;
            *p = *p * self.decay - m_hat / (v_hat.sqrt() + self.eps) * self.lr;
        }
    }
}

/// A second thread kept for the trainer's lifetime: the other half of every batch, of the
/// gradient sum and of the update. (A fresh thread per step paid for its stack and for `gemm`'s
/// per-thread scratch every step, in page faults.)
#[derive(Debug)]
struct Helper {
    /// Where jobs go.
    jobs: Option<SyncSender<Job>>,
    /// Where the helper answers with its job's result (`None` if it panicked).
    done: Receiver<Option<f64>>,
    /// The thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

/// One job for the helper, its data handed over by pointer: [`Helper::run`] waits for the answer
/// before the borrows the pointers came from end, and the main thread touches none of the data
/// meanwhile.
enum Job {
    /// `workspace.gradients_for(net, example, b, total)`; answers the sum of squared errors.
    Gradients {
        /// The network, read only.
        net: *const Network,
        /// The helper's workspace.
        workspace: *mut Workspace,
        /// The share's input sequences.
        input: *const f32,
        /// The share's targets, `len` values like the input.
        target: *const f32,
        /// The share's error weights, `len` values, or null when every value weighs alike.
        weights: *const f32,
        /// The contrastive loss, if any.
        contrast: Option<Contrast>,
        /// The share's kinds of sound, `b` of them, or null when none are known.
        kinds: *const Option<u8>,
        /// Values in the share.
        len: usize,
        /// Sequences in the share.
        b: usize,
        /// Sequences in the whole batch.
        total: usize,
    },
    /// `out = first + second` over `len` values; answers the squared norm of `out`.
    Combine {
        /// One share's gradient part.
        first: *const f32,
        /// The other's.
        second: *const f32,
        /// Where the sum goes.
        out: *mut f32,
        /// Values.
        len: usize,
    },
    /// `update.apply` over `len` parameters; answers 0.
    Update {
        /// The step's constants.
        update: Update,
        /// The parameters.
        params: *mut f32,
        /// Their gradient.
        grads: *const f32,
        /// Their first moments.
        m: *mut f32,
        /// Their second moments.
        v: *mut f32,
        /// Parameters.
        len: usize,
    },
}

// SAFETY: the pointers are only dereferenced while `Helper::run` holds the borrows they came
// from and waits for the answer (see there).
unsafe impl Send for Job {}

impl Job {
    /// Does the job.
    ///
    /// # Safety
    /// The pointers must be valid for the lengths given, and nothing else may touch what the
    /// mutable ones point to until this returns.
    unsafe fn run(self) -> f64 {
        use std::slice::{from_raw_parts, from_raw_parts_mut};
        match self {
            Job::Gradients {
                net,
                workspace,
                input,
                target,
                weights,
                contrast,
                kinds,
                len,
                b,
                total,
            } => {
                let example = Example {
                    input: from_raw_parts(input, len),
                    target: from_raw_parts(target, len),
                    weights: (!weights.is_null()).then(|| from_raw_parts(weights, len)),
                    contrast,
                    kinds: (!kinds.is_null()).then(|| from_raw_parts(kinds, b)),
                };
                (*workspace).gradients_for(&*net, example, b, total)
            }
            Job::Combine {
                first,
                second,
                out,
                len,
            } => sum_into(
                from_raw_parts_mut(out, len),
                from_raw_parts(first, len),
                from_raw_parts(second, len),
            ),
            Job::Update {
                update,
                params,
                grads,
                m,
                v,
                len,
            } => {
                update.apply(
                    from_raw_parts_mut(params, len),
                    from_raw_parts(grads, len),
                    from_raw_parts_mut(m, len),
                    from_raw_parts_mut(v, len),
                );
                0.0
            }
        }
    }
}

impl Helper {
    /// Starts the thread. Allocates.
    fn start() -> Self {
        let (jobs, inbox) = sync_channel::<Job>(1);
        let (answers, done) = sync_channel::<Option<f64>>(1);
        let thread = std::thread::Builder::new()
            .name("echoic-train".into())
            .spawn(move || {
                while let Ok(job) = inbox.recv() {
                    // SAFETY: see `Helper::run`: the sender keeps the borrows behind the job
                    // alive and untouched until it has our answer.
                    let result =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
                            job.run()
                        }));
                    if answers.send(result.ok()).is_err() {
                        break;
                    }
                }
            })
            .expect("the training thread starts");
        Self {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        }
    }

    /// Runs `job` on the helper while `own` runs here; returns the two results added. Waits
    /// for the helper even when `own` panics, so that no borrow handed over ends while the
    /// helper uses it.
    ///
    /// # Panics
    /// If the helper's job panicked (after it has stopped using the data).
    fn run(&mut self, job: Job, own: impl FnOnce() -> f64) -> f64 {
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(own));
        let theirs = if sent {
            self.done.recv().ok().flatten()
        } else {
            None
        };
        let mine = mine.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        mine + theirs.expect("the training thread failed")
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
