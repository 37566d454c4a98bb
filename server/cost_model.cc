#include "server/cost_model.h"

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "xgboost/c_api.h"

namespace tlm::server {
namespace {

// Passed as XGBoost's marker of a missing value; features are always present.
constexpr float kMissing = std::numeric_limits<float>::quiet_NaN();

constexpr char kPredictConfig[] =
    R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0,)"
    R"( "strict_shape": false})";

// OK for XGBoost's success code, else INTERNAL with its last error message.
absl::Status Check(int rc, const char* call) {
  if (rc == 0) return absl::OkStatus();
  const char* error = XGBGetLastError();
  return absl::InternalError(
      absl::StrCat("xgboost ", call, ": ", error != nullptr ? error : "unknown error"));
}

struct DMatrixFree {
  void operator()(void* dmatrix) const { XGDMatrixFree(dmatrix); }
};
using DMatrix = std::unique_ptr<void, DMatrixFree>;

// A float32 DMatrix of dense rows, all of width `width`.
absl::StatusOr<DMatrix> MakeDMatrix(const std::vector<std::vector<double>>& rows, size_t width) {
  std::vector<float> data;
  data.reserve(rows.size() * width);
  for (const std::vector<double>& row : rows) {
    if (row.size() != width) {
      return absl::InvalidArgumentError(
          absl::StrCat("cost model: a feature row has width ", row.size(), ", expected ", width));
    }
    for (double v : row) data.push_back(static_cast<float>(v));
  }
  DMatrixHandle handle = nullptr;
  if (absl::Status s =
          Check(XGDMatrixCreateFromMat(data.data(), rows.size(), width, kMissing, &handle),
                "XGDMatrixCreateFromMat");
      !s.ok()) {
    return s;
  }
  return DMatrix(handle);
}

}  // namespace

void TreeCostModel::BoosterFree::operator()(void* booster) const { XGBoosterFree(booster); }

TreeCostModel::TreeCostModel() : TreeCostModel(Options()) {}
TreeCostModel::TreeCostModel(Options options) : options_(options) {}
TreeCostModel::~TreeCostModel() = default;
TreeCostModel::TreeCostModel(TreeCostModel&&) noexcept = default;
TreeCostModel& TreeCostModel::operator=(TreeCostModel&&) noexcept = default;

void TreeCostModel::Add(std::vector<double> features, double log_seconds) {
  rows_.push_back(std::move(features));
  labels_.push_back(log_seconds);
  dirty_ = true;
}

absl::Status TreeCostModel::Fit() {
  if (!dirty_) return absl::OkStatus();
  const size_t n = rows_.size();
  const size_t width = rows_[0].size();
  double sum = 0;
  for (double y : labels_) {
    if (!std::isfinite(y)) {
      return absl::InvalidArgumentError(absl::StrCat("cost model: label ", y, " is not finite"));
    }
    sum += y;
  }
  const double mean = sum / n;

  std::unique_ptr<void, BoosterFree> booster;
  if (n >= 2) {
    absl::StatusOr<DMatrix> train = MakeDMatrix(rows_, width);
    if (!train.ok()) return train.status();
    const std::vector<float> labels(labels_.begin(), labels_.end());
    if (absl::Status s = Check(XGDMatrixSetFloatInfo(train->get(), "label", labels.data(), n),
                               "XGDMatrixSetFloatInfo");
        !s.ok()) {
      return s;
    }
    DMatrixHandle cache[] = {train->get()};
    BoosterHandle handle = nullptr;
    if (absl::Status s = Check(XGBoosterCreate(cache, 1, &handle), "XGBoosterCreate"); !s.ok()) {
      return s;
    }
    booster.reset(handle);
    const std::pair<const char*, std::string> params[] = {
        {"objective", "reg:squarederror"},
        {"booster", "gbtree"},
        // Exact greedy splits lie halfway between observed values (histogram
        // cuts lie on them); cheap at the size of one task's measurements.
        {"tree_method", "exact"},
        {"max_depth", absl::StrCat(options_.max_depth)},
        {"eta", absl::StrFormat("%.17g", options_.eta)},
        // Boosting starts from the mean label; the trees fit deviations from it.
        {"base_score", absl::StrFormat("%.17g", mean)},
        {"nthread", "1"},
        {"seed", absl::StrCat(options_.seed)},
    };
    for (const auto& [name, value] : params) {
      if (absl::Status s =
              Check(XGBoosterSetParam(handle, name, value.c_str()), "XGBoosterSetParam");
          !s.ok()) {
        return s;
      }
    }
    for (int round = 0; round < options_.rounds; ++round) {
      if (absl::Status s =
              Check(XGBoosterUpdateOneIter(handle, round, train->get()), "XGBoosterUpdateOneIter");
          !s.ok()) {
        return s;
      }
    }
  }
  booster_ = std::move(booster);
  mean_ = mean;
  width_ = width;
  has_width_ = true;
  dirty_ = false;
  ++fits_;
  return absl::OkStatus();
}

absl::StatusOr<double> TreeCostModel::Predict(const std::vector<double>& features) const {
  absl::StatusOr<std::vector<double>> predicted = PredictMany({features});
  if (!predicted.ok()) return predicted.status();
  return (*predicted)[0];
}

absl::StatusOr<std::vector<double>> TreeCostModel::PredictMany(
    const std::vector<std::vector<double>>& rows) const {
  if (has_width_) {
    for (const std::vector<double>& row : rows) {
      if (row.size() != width_) {
        return absl::InvalidArgumentError(absl::StrCat("cost model: a feature row has width ",
                                                       row.size(), ", the model ", width_));
      }
    }
  }
  if (booster_ == nullptr || rows.empty()) return std::vector<double>(rows.size(), mean_);

  absl::StatusOr<DMatrix> matrix = MakeDMatrix(rows, width_);
  if (!matrix.ok()) return matrix.status();
  const bst_ulong* shape = nullptr;
  bst_ulong dims = 0;
  const float* result = nullptr;
  if (absl::Status s = Check(XGBoosterPredictFromDMatrix(booster_.get(), matrix->get(),
                                                         kPredictConfig, &shape, &dims, &result),
                             "XGBoosterPredictFromDMatrix");
      !s.ok()) {
    return s;
  }
  bst_ulong count = 1;
  for (bst_ulong d = 0; d < dims; ++d) count *= shape[d];
  if (dims == 0 || count != rows.size()) {
    return absl::InternalError(
        absl::StrCat("xgboost returned ", count, " predictions for ", rows.size(), " rows"));
  }
  // `result` belongs to the booster and is valid until its next call.
  return std::vector<double>(result, result + count);
}

}  // namespace tlm::server
