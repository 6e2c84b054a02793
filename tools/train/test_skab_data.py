"""Checks of the SKAB protocol helpers (numpy only; the SKAB data are needed for the last test).

  /usr/bin/python3 -m unittest discover -s tools/train -p 'test_*.py'
"""

import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from skab_data import (FEATURES, ONBOARD_ROWS, binary_scores, load_anomaly_free, load_experiments,  # noqa: E402
                       normal_window_ends, skab_dir, windows)


class BinaryScoresTests(unittest.TestCase):
    def test_binaryScores_knownCounts_giveF1FarMar(self):
        y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
        p = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
        r = binary_scores(y, p)
        self.assertEqual((r["tp"], r["fp"], r["fn"], r["tn"]), (3, 1, 1, 5))
        self.assertAlmostEqual(r["f1"], 6 / 8)
        self.assertAlmostEqual(r["far"], 1 / 6)
        self.assertAlmostEqual(r["mar"], 1 / 4)


class WindowsTests(unittest.TestCase):
    def test_windows_endAtEachRow_holdPrecedingRows(self):
        z = np.arange(20, dtype=np.float32).reshape(10, 2)
        w = windows(z, 4, 3, 6)
        self.assertEqual(w.shape, (3, 4, 2))
        np.testing.assert_array_equal(w[0, :, 0], [0, 2, 4, 6])
        np.testing.assert_array_equal(w[2, -1], z[5])

    def test_windows_tooEarlyStart_isRejected(self):
        with self.assertRaises(ValueError):
            windows(np.zeros((10, 2)), 4, 2, 5)

    def test_normalWindowEnds_skipWindowsTouchingAnAnomaly(self):
        anomaly = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0, 0])
        np.testing.assert_array_equal(normal_window_ends(anomaly, 3), [2, 3, 7, 8, 9])


class LoadTests(unittest.TestCase):
    def test_loadExperiments_sharedData_standardizesOnOnboardingRows(self):
        try:
            skab_dir()
        except FileNotFoundError:
            self.skipTest("SKAB data not present")
        exps = load_experiments()
        self.assertEqual(len(exps), 20)
        self.assertEqual(exps[0].raw.shape[1], len(FEATURES))
        z = exps[0].z[:ONBOARD_ROWS]
        np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
        self.assertTrue(set(np.unique(exps[0].anomaly)) <= {0, 1})

    def test_loadAnomalyFree_sharedData_linesCoverTheRecordingUnlabelled(self):
        try:
            skab_dir()
        except FileNotFoundError:
            self.skipTest("SKAB data not present")
        lines = load_anomaly_free()
        self.assertEqual(sum(len(e.raw) for e in lines), 9405)
        self.assertTrue(all(len(e.raw) >= ONBOARD_ROWS for e in lines))
        self.assertTrue(all(not e.anomaly.any() for e in lines))


if __name__ == "__main__":
    unittest.main()
