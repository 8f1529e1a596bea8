/*
 * test_main.c — main of build/bin/kvtest: registers every suite, runs them with
 * CUnit's Basic interface in verbose mode, and exits non-zero when a test failed,
 * a suite could not run, or CUnit itself reported an error.
 *
 * Environment: KV_TEST_QUICK=1 scales iteration counts down (make test-asan,
 * make test-valgrind); KV_TEST_VALGRIND=1 says valgrind runs the suite (kvtest.h);
 * KV_TEST_KEEP=1 keeps the temporary store directories; KV_TEST_TIMEOUT=<s> sets the
 * per-test watchdog; KV_PROPERTY_SEED=<n> runs the property test for one seed;
 * KV_TEST_SUITE=<suite> [KV_TEST_NAME=<test>] runs one suite [one test of it];
 * KV_TEST_SIGSTORM=<hz>[,norestart] runs it all under a signal storm (sigstorm.h).
 */
#include "kvtest.h"

#include "sigstorm.h"

#include <stdio.h>
#include <stdlib.h>

#include <CUnit/Basic.h>

/* Runs everything, or with KV_TEST_SUITE=<name> one suite, with KV_TEST_NAME=<name>
 * too one test of it. */
static CU_ErrorCode run_selected(void)
{
    const char *suite_name = getenv("KV_TEST_SUITE");
    const char *test_name = getenv("KV_TEST_NAME");
    CU_pSuite suite;
    CU_pTest test;

    if (suite_name == NULL || suite_name[0] == '\0')
        return CU_basic_run_tests();
    suite = CU_get_suite(suite_name);
    if (suite == NULL) {
        fprintf(stderr, "kvtest: no suite named \"%s\"\n", suite_name);
        return CUE_NOSUITE;
    }
    if (test_name == NULL || test_name[0] == '\0')
        return CU_basic_run_suite(suite);
    test = CU_get_test(suite, test_name);
    if (test == NULL) {
        fprintf(stderr, "kvtest: no test named \"%s\" in suite \"%s\"\n", test_name,
                suite_name);
        return CUE_NOTEST;
    }
    return CU_basic_run_test(suite, test);
}

int main(void)
{
    unsigned failed_tests, failed_suites;
    CU_ErrorCode err;

    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "kvtest: CU_initialize_registry: %s\n", CU_get_error_msg());
        return 2;
    }
    kvt_register_entry();
    kvt_register_lz4();
    kvt_register_fuzz_regress();
    kvt_register_api();
    kvt_register_property();
    kvt_register_concurrency();
    kvt_register_crash();
    kvt_register_compact();
    kvt_register_kvdump();
    kvt_register_crashsim();
    kvt_register_kvcheck();
    kvt_register_signals();
    kvt_register_tail();
    kvt_register_repair();
    kvt_register_live();
    kvt_register_refresh();
    kvt_register_hostile();
    kvt_register_json();
    kvt_register_abi();
    kvt_register_debug();
    kvt_register_tools_live();
    kvt_register_readers();
    kvt_register_compact_live();
    kvt_register_peerbench();
    if (CU_get_error() != CUE_SUCCESS) {
        fprintf(stderr, "kvtest: registering suites: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }

    /* KV_TEST_EXCLUDE=<suite> leaves one suite out of a whole run (make test-valgrind
     * leaves out crashsim: its ~12,000 reopen cycles take too long under valgrind,
     * and the normal and ASan+UBSan passes run it). */
    const char *excl = getenv("KV_TEST_EXCLUDE");
    if (excl != NULL && excl[0] != '\0') {
        CU_pSuite s = CU_get_suite(excl);
        if (s == NULL) {
            fprintf(stderr, "kvtest: KV_TEST_EXCLUDE: no suite named \"%s\"\n", excl);
            CU_cleanup_registry();
            return 2;
        }
        CU_set_suite_active(s, CU_FALSE);
        CU_set_fail_on_inactive(CU_FALSE);
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    unsigned storm_hz = 0;
    int storm_restart = 1;
    if (kvt_storm_from_env(&storm_hz, &storm_restart)
        && kvt_storm_start(storm_hz, storm_restart) != 0) {
        fprintf(stderr, "kvtest: KV_TEST_SIGSTORM: cannot start the storm\n");
        CU_cleanup_registry();
        return 2;
    }
    err = run_selected();
    if (storm_hz > 0)
        printf("\nkvtest: signal storm: %llu signals handled (%u Hz to every thread, "
               "SA_RESTART %s)\n", (unsigned long long)kvt_storm_stop(), storm_hz,
               storm_restart ? "on" : "off");
    failed_tests = CU_get_number_of_tests_failed();
    failed_suites = CU_get_number_of_suites_failed();
    printf("\n");
    CU_cleanup_registry();

    if (err != CUE_SUCCESS) {
        fprintf(stderr, "kvtest: CUnit error %d\n", (int)err);
        return 2;
    }
    return (failed_tests != 0 || failed_suites != 0) ? 1 : 0;
}
