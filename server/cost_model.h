// A gradient-boosted-tree cost model (XGBoost) that predicts log(seconds) of
// a program from its feature vector, trained online on a task's
// measurements: the model that ranks candidates in evolutionary search.
#ifndef TLMD_SERVER_COST_MODEL_H_
#define TLMD_SERVER_COST_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tlm::server {

// Regression trees boosted on squared error of log(seconds).
//
// Objective: reg:squarederror rather than a ranking objective (rank:pairwise).
// A pairwise objective only orders candidates and leaves the scale of its
// scores arbitrary, but callers compare predictions with measured
// log(seconds) directly (evolution keeps measured and predicted programs in
// one elite) and label failed programs with a time slower than the slowest,
// both of which need predictions on the scale of the labels. Regression on
// log time still orders candidates well because the log makes errors relative.
//
// Training is single-threaded (workers may share the machine) and
// deterministic: the same observations in the same order give the same
// model.
//
// Failure: every XGBoost error becomes INTERNAL; rows whose width differs from
// the training rows are INVALID_ARGUMENT. Prediction is fallible, so Predict
// and PredictMany return StatusOr rather than a silent 0.
//
// Not thread-safe, including the const methods: prediction uses the
// booster's internal caches.
class TreeCostModel {
 public:
  struct Options {
    int rounds = 64;    // boosting rounds per fit
    int max_depth = 6;  // depth of each tree
    double eta = 0.3;   // shrinkage of each tree's contribution
    int64_t seed = 0;   // XGBoost's random seed
  };

  TreeCostModel();
  explicit TreeCostModel(Options options);
  ~TreeCostModel();
  TreeCostModel(TreeCostModel&&) noexcept;
  TreeCostModel& operator=(TreeCostModel&&) noexcept;
  TreeCostModel(const TreeCostModel&) = delete;
  TreeCostModel& operator=(const TreeCostModel&) = delete;

  // Records one observation; it takes effect at the next Fit.
  void Add(std::vector<double> features, double log_seconds);

  // Trains a fresh model on all observations if any arrived since the last
  // successful fit; otherwise returns OK at once without training. With
  // fewer than two observations the model is their mean (0 for none).
  // INVALID_ARGUMENT when the observations differ in width or a label is not
  // finite; INTERNAL when XGBoost fails. On failure the previous model is
  // kept and the next Fit tries again.
  absl::Status Fit();

  // Predicted log(seconds) from the model of the last successful fit; 0
  // before any. `features` must have the width of the training rows once a
  // model was fit on at least one observation.
  absl::StatusOr<double> Predict(const std::vector<double>& features) const;

  // Predict for many rows in one XGBoost call; result i belongs to row i.
  absl::StatusOr<std::vector<double>> PredictMany(
      const std::vector<std::vector<double>>& rows) const;

  // Observations added so far.
  size_t size() const { return labels_.size(); }

  // Successful fits that trained a model (Fit calls that found no new
  // observation do not count).
  int64_t fits() const { return fits_; }

 private:
  struct BoosterFree {
    void operator()(void* booster) const;
  };

  Options options_;
  std::vector<std::vector<double>> rows_;
  std::vector<double> labels_;
  bool dirty_ = false;
  int64_t fits_ = 0;
  // The model of the last successful fit: `booster_` when it saw two or
  // more observations, else the constant `mean_`.
  std::unique_ptr<void, BoosterFree> booster_;
  double mean_ = 0;
  size_t width_ = 0;
  bool has_width_ = false;
};

}  // namespace tlm::server

#endif  // TLMD_SERVER_COST_MODEL_H_
