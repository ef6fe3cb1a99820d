//! Any bytes as saved plugin state, loaded through the real plugin's `clap.state.load` while it
//! is active (nice-plug's wrapper, then Echoic's persisted fields). Whatever the bytes:
//! - nothing panics or aborts (nih-plug #279 aborted on a huge length field);
//! - the plugin keeps passing audio bit for bit, without allocating (`assert_process_allocs`);
//! - it can save its state afterwards, and a state it saved loads again and saves the same.

#![no_main]

use echoic_fuzz::{active_host, test_block, BLOCK};
use echoic_host_tests::{state_document, EchoicHost};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

thread_local! {
    /// One instance for the whole run, as a host keeps one while a user loads presets: every
    /// input also meets whatever state the previous inputs left behind.
    static HOST: RefCell<Option<EchoicHost>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    HOST.with_borrow_mut(|host| {
        let host = host.get_or_insert_with(active_host);
        let loaded = host.load_state(data).is_ok();

        let input = test_block();
        let mut left = vec![0.0; BLOCK];
        let mut right = vec![0.0; BLOCK];
        host.process_block(&[&input[0], &input[1]], &mut [&mut left, &mut right])
            .expect("the plugin processes after any state load");
        assert!(
            left == input[0] && right == input[1],
            "the audio no longer passes through after loading {} state",
            if loaded { "an accepted" } else { "a refused" }
        );

        let saved = host
            .save_state()
            .expect("the plugin saves its state after any load");
        host.load_state(&saved)
            .expect("a state the plugin saved loads again");
        let again = host.save_state().expect("and saves again");
        assert_eq!(
            state_document(&saved),
            state_document(&again),
            "saving, loading and saving again changed the state"
        );
    });
});
