"""Hostile inputs (issue 10): every case that once gave a wrong number with exit 0, or blamed srbench for a
fault that was not its own, each with a test that failed before its fix.

The cases live in four modules by area (``hostile_eval.py``: run logs, resumes, Ctrl-C; ``hostile_images.py``:
bombs, memory, non-finite values, 16-bit files; ``hostile_models.py``: faults in user code and checkpoints;
``hostile_records.py``: report, pairing, upscale, profile); this file collects them all, so
``pytest tests/test_hostile_inputs.py`` runs every hostile case. ``ITEMS`` maps each numbered item of the issue
to the tests that prove it, and ``test_every_item_has_its_tests`` keeps that map true."""

from __future__ import annotations

from hostile_eval import (  # noqa: F401 - collected by pytest from this module
    test_a_partial_resume_reports_the_max_over_its_segments,
    test_a_resume_with_nothing_left_reports_the_earlier_peak,
    test_a_run_of_another_checkpoint_never_resumes_or_touches_the_first_log,
    test_a_second_run_with_the_same_key_stops_at_once_naming_the_owner,
    test_a_segment_killed_without_its_line_is_named,
    test_another_srbench_version_does_not_resume,
    test_ctrl_c_while_the_finisher_is_inside_torch_exits_130,
    test_the_key_covers_the_image_list,
    test_the_run_log_key_covers_what_changes_a_number,
    test_the_same_model_args_in_another_order_resume,
)
from hostile_images import (  # noqa: F401 - collected by pytest from this module
    bomb_set,
    test_a_checkpoint_with_non_finite_weights_is_a_warning_naming_the_tensor,
    test_a_dataset_with_sixteen_bit_images_gets_one_warning,
    test_a_decompression_bomb_is_a_named_bad_image,
    test_a_model_returning_nan_fails_that_image_like_a_bad_one,
    test_a_skipped_nan_image_is_warned_once_with_its_reason,
    test_an_image_too_large_for_memory_is_an_error_that_suggests_a_tile,
    test_estimate_grows_with_the_pixels_and_never_touches_the_model,
    test_eval_cli_with_nan_weights_is_one_line,
    test_eval_with_a_bomb_stops_named_or_skips_it,
    test_free_memory_comes_from_the_device,
    test_live_tensor_bytes_follow_allocation_and_release,
    test_non_finite_weights_stop_the_eval_naming_image_and_model,
    test_profile_size_too_large_is_an_error_before_any_forward,
    test_sixteen_bit_files_are_recognised,
    tiny_weights,
)
from hostile_models import (  # noqa: F401 - collected by pytest from this module
    images,
    net,
    test_documented_key_order_when_the_spec_key_is_absent,
    test_forward_returning_a_non_tensor_is_the_models_fault,
    test_model_failures_name_file_phase_and_exception,
    test_pickle_protocol_warning_never_reaches_stderr,
    test_sys_exit_at_import_is_reported,
    test_sys_exit_while_counting_is_reported,
    test_upper_case_safetensors_suffix,
)
from hostile_records import (  # noqa: F401 - collected by pytest from this module
    nets,
    test_a_newer_partial_tiled_eval_does_not_replace_the_full_one,
    test_a_score_against_a_partial_baseline_says_so_and_how_to_allow_it,
    test_an_eval_record_validates_and_reads_back,
    test_batched_profile_is_another_size,
    test_complete_tiled_eval_is_used_when_no_untiled_one_exists_and_is_marked,
    test_only_partial_evals_leave_cells_empty_unless_allowed,
    test_out_of_memory_while_counting_is_the_oom_error_with_its_size_hint,
    test_profile_checks_the_output_at_the_profiled_size,
    test_profile_warns_when_the_output_is_not_finite,
    test_report_size_option_picks_the_other_profiles,
    test_report_skips_a_record_with_a_list_or_dict_identity,
    test_report_skips_an_eval_record_with_a_nan_metric_naming_it,
    test_report_takes_complexity_from_256_profiles_and_names_the_others,
    test_threads_beyond_the_cores_are_capped_and_recorded,
    test_two_lr_candidates_for_one_hr_is_an_error_naming_both,
    test_upscale_refuses_two_inputs_with_one_output_name,
    test_upscale_with_a_nan_output_fails_naming_image_and_model_and_writes_no_png,
    two_sizes,
)

ITEMS: dict[int, tuple[str, ...]] = {
    1: (
        "test_a_second_run_with_the_same_key_stops_at_once_naming_the_owner",
        "test_the_run_log_key_covers_what_changes_a_number",
        "test_the_same_model_args_in_another_order_resume",
        "test_another_srbench_version_does_not_resume",
        "test_the_key_covers_the_image_list",
        "test_a_run_of_another_checkpoint_never_resumes_or_touches_the_first_log",
    ),
    2: (
        "test_non_finite_weights_stop_the_eval_naming_image_and_model",
        "test_a_model_returning_nan_fails_that_image_like_a_bad_one",
        "test_a_skipped_nan_image_is_warned_once_with_its_reason",
        "test_eval_cli_with_nan_weights_is_one_line",
        "test_a_checkpoint_with_non_finite_weights_is_a_warning_naming_the_tensor",
        "test_profile_warns_when_the_output_is_not_finite",
        "test_profile_checks_the_output_at_the_profiled_size",
        "test_upscale_with_a_nan_output_fails_naming_image_and_model_and_writes_no_png",
        "test_report_skips_an_eval_record_with_a_nan_metric_naming_it",
    ),
    3: (
        "test_report_takes_complexity_from_256_profiles_and_names_the_others",
        "test_report_size_option_picks_the_other_profiles",
        "test_batched_profile_is_another_size",
    ),
    4: (
        "test_a_newer_partial_tiled_eval_does_not_replace_the_full_one",
        "test_only_partial_evals_leave_cells_empty_unless_allowed",
        "test_complete_tiled_eval_is_used_when_no_untiled_one_exists_and_is_marked",
        "test_a_score_against_a_partial_baseline_says_so_and_how_to_allow_it",
    ),
    5: (
        "test_two_lr_candidates_for_one_hr_is_an_error_naming_both",
    ),
    6: (
        "test_a_resume_with_nothing_left_reports_the_earlier_peak",
        "test_a_partial_resume_reports_the_max_over_its_segments",
        "test_a_segment_killed_without_its_line_is_named",
    ),
    7: (
        "test_upscale_refuses_two_inputs_with_one_output_name",
    ),
    8: (
        "test_forward_returning_a_non_tensor_is_the_models_fault",
        "test_model_failures_name_file_phase_and_exception",
    ),
    9: (
        "test_sys_exit_at_import_is_reported",
        "test_sys_exit_while_counting_is_reported",
    ),
    10: (
        "test_a_decompression_bomb_is_a_named_bad_image",
        "test_eval_with_a_bomb_stops_named_or_skips_it",
    ),
    11: (
        "test_an_image_too_large_for_memory_is_an_error_that_suggests_a_tile",
        "test_profile_size_too_large_is_an_error_before_any_forward",
        "test_estimate_grows_with_the_pixels_and_never_touches_the_model",
        "test_live_tensor_bytes_follow_allocation_and_release",
        "test_free_memory_comes_from_the_device",
    ),
    12: (
        "test_ctrl_c_while_the_finisher_is_inside_torch_exits_130",
    ),
    13: (
        "test_report_skips_a_record_with_a_list_or_dict_identity",
    ),
    14: (
        "test_documented_key_order_when_the_spec_key_is_absent",
    ),
    15: (
        "test_upper_case_safetensors_suffix",
    ),
    16: (
        "test_pickle_protocol_warning_never_reaches_stderr",
    ),
    17: (
        "test_out_of_memory_while_counting_is_the_oom_error_with_its_size_hint",
    ),
    18: (
        "test_threads_beyond_the_cores_are_capped_and_recorded",
    ),
}


def test_every_item_has_its_tests() -> None:
    """Items 1-18 of the issue each name at least one test, and every named test is collected from this module."""
    assert sorted(ITEMS) == list(range(1, 19))
    names = {n for n, v in globals().items() if n.startswith("test_") and callable(v)}
    assert all(ITEMS[item] and set(ITEMS[item]) <= names for item in ITEMS)
