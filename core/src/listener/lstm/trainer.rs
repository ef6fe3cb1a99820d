//! Offline and on a training thread: minibatch steps of AdamW on the reconstruction error.
//!
//! A [`Trainer`] owns the network, the optimiser's moments and one [`Workspace`] per thread.
//! A step runs forward and backward (on two threads, each half of the batch, when asked),
//! clips the global gradient norm, and applies AdamW exactly as candle's `AdamW` does, so that a
//! run with this engine and one with candle follow the same path.

use super::batch::Workspace;
use super::network::Network;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// How to train.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainerConfig {
    /// AdamW learning rate.
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
    /// First moments, laid out like the parameters.
    m: Vec<f32>,
    /// Second moments, laid out like the parameters.
    v: Vec<f32>,
    /// Steps taken.
    t: i32,
    /// One workspace per thread.
    workspaces: Vec<Workspace>,
    /// The second thread, when two are asked for.
    helper: Option<Helper>,
    /// The batch's gradient: the threads' parts summed.
    grads: Vec<f32>,
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
            v: vec![0.0; n],
            t: 0,
            grads: vec![0.0; n],
        }
    }

    /// The weights.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The weights, giving up the optimiser's state.
    pub fn into_network(self) -> Network {
        self.net
    }

    /// The mean squared error of `b` normalised sequences (`b × T × n_bands`, batch-major) and
    /// its gradient with respect to every parameter (laid out like them), without updating.
    /// Allocation-free once the workspaces hold the batch (the `gemm` crate aside).
    ///
    /// # Panics
    /// If `b` is 0 or `x` holds fewer than `b` sequences.
    pub fn gradients(&mut self, x: &[f32], b: usize) -> (f64, &[f32]) {
        let sse = self.backward(x, b);
        self.grads.fill(0.0);
        for workspace in &self.workspaces[..self.shares(b)] {
            for (g, &w) in self.grads.iter_mut().zip(workspace.grads()) {
                *g += w;
            }
        }
        let cfg = self.net.config();
        (sse / (b * cfg.steps * cfg.n_bands) as f64, &self.grads)
    }

    /// Workspaces a batch of `b` uses: two only when both get a sequence.
    fn shares(&self, b: usize) -> usize {
        self.workspaces.len().min(b)
    }

    /// Forward and backward over `b` sequences, split between the threads; returns the sum of
    /// squared errors, with each workspace holding its share's gradient.
    fn backward(&mut self, x: &[f32], b: usize) -> f64 {
        let cfg = self.net.config();
        let sequence = cfg.steps * cfg.n_bands;
        assert!(b > 0 && x.len() >= b * sequence, "batch slice too short");
        let Trainer {
            net,
            workspaces,
            helper,
            ..
        } = self;
        match (workspaces.as_mut_slice(), helper) {
            ([first, second], Some(helper)) if b > 1 => {
                let split = b.div_ceil(2);
                let (head, tail) = x[..b * sequence].split_at(split * sequence);
                helper.gradients(net, second, tail, b - split, b, || {
                    first.gradients(net, head, split, b)
                })
            }
            (workspaces, _) => workspaces[0].gradients(net, x, b, b),
        }
    }

    /// One training step on `b` normalised sequences: gradient, clipping, AdamW. Returns the
    /// mean squared error before the update.
    ///
    /// # Panics
    /// As [`gradients`](Self::gradients).
    pub fn step(&mut self, x: &[f32], b: usize) -> f64 {
        let (loss, _) = self.gradients(x, b);
        let factor = match self.cfg.clip_grad_norm {
            Some(limit) => clip_factor(&self.grads, limit),
            None => 1.0,
        };
        self.t += 1;
        adamw(
            &self.cfg,
            self.t,
            factor,
            self.net.params_mut(),
            &self.grads,
            &mut self.m,
            &mut self.v,
        );
        loss
    }
}

/// A second thread kept for the trainer's lifetime, for the other half of every batch. (A
/// fresh thread per step paid for its stack and for `gemm`'s per-thread scratch every step,
/// in page faults.)
#[derive(Debug)]
struct Helper {
    /// Where jobs go.
    jobs: Option<SyncSender<Job>>,
    /// Where the helper answers with its share's sum of squared errors (`None` if it panicked).
    done: Receiver<Option<f64>>,
    /// The thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

/// One share of a batch, handed to the helper by pointer: [`Helper::gradients`] waits for the
/// answer before the borrows the pointers came from end.
struct Job {
    /// The network, read only.
    net: *const Network,
    /// The helper's workspace, used by it alone until it answers.
    workspace: *mut Workspace,
    /// The share's sequences.
    x: *const f32,
    /// Values in the share.
    len: usize,
    /// Sequences in the share.
    b: usize,
    /// Sequences in the whole batch.
    total: usize,
}

// SAFETY: the pointers are only dereferenced while `Helper::gradients` holds the borrows they
// came from and waits for the answer (see there).
unsafe impl Send for Job {}

impl Helper {
    /// Starts the thread. Allocates.
    fn start() -> Self {
        let (jobs, inbox) = sync_channel::<Job>(1);
        let (answers, done) = sync_channel::<Option<f64>>(1);
        let thread = std::thread::Builder::new()
            .name("echoic-train".into())
            .spawn(move || {
                while let Ok(job) = inbox.recv() {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        // SAFETY: see `Helper::gradients`: the sender keeps these borrows alive
                        // and unaliased until it has our answer.
                        let (net, workspace, x) = unsafe {
                            (
                                &*job.net,
                                &mut *job.workspace,
                                std::slice::from_raw_parts(job.x, job.len),
                            )
                        };
                        workspace.gradients(net, x, job.b, job.total)
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

    /// Runs `workspace.gradients(net, x, b, total)` on the helper while `own` runs here; returns
    /// the two sums of squared errors added. Waits for the helper even when `own` panics, so
    /// that no borrow handed over ends while the helper uses it.
    fn gradients(
        &mut self,
        net: &Network,
        workspace: &mut Workspace,
        x: &[f32],
        b: usize,
        total: usize,
        own: impl FnOnce() -> f64,
    ) -> f64 {
        let job = Job {
            net,
            workspace,
            x: x.as_ptr(),
            len: x.len(),
            b,
            total,
        };
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

/// The factor that scales `grads` to an L2 norm of `limit` when its norm is larger (and
/// finite), else 1.
fn clip_factor(grads: &[f32], limit: f64) -> f32 {
    let norm = grads
        .iter()
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt();
    if norm > limit && norm.is_finite() {
        (limit / norm) as f32
    } else {
        1.0
    }
}

/// One AdamW update on the gradient `grads × factor` (the clipping), in candle's order of
/// operations: moments, bias corrections, decoupled decay, then the step.
fn adamw(
    cfg: &TrainerConfig,
    t: i32,
    factor: f32,
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let (beta1, beta2) = (cfg.beta1 as f32, cfg.beta2 as f32);
    let (one_minus_beta1, one_minus_beta2) = ((1.0 - cfg.beta1) as f32, (1.0 - cfg.beta2) as f32);
    let scale_m = (1.0 / (1.0 - cfg.beta1.powi(t))) as f32;
    let scale_v = (1.0 / (1.0 - cfg.beta2.powi(t))) as f32;
    let decay = (1.0 - cfg.learning_rate * cfg.weight_decay) as f32;
    let (lr, eps) = (cfg.learning_rate as f32, cfg.eps as f32);
    for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
        let g = g * factor;
        *m = *m * beta1 + g * one_minus_beta1;
        *v = *v * beta2 + g * g * one_minus_beta2;
        let m_hat = *m * scale_m;
        let v_hat = *v * scale_v;
        *p = *p * decay - m_hat / (v_hat.sqrt() + eps) * lr;
    }
}
