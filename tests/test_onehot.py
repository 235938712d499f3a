"""fastnn.data.OneHotEncoder: nominal columns one-hot, numeric columns passed through."""
import numpy as np
import pytest

from fastnn.data import OneHotEncoder

# The classic loan-default table (Tan, Steinbach & Kumar): Home Owner, Marital Status,
# Annual Income (thousands) -> Defaulted Borrower.
ROWS = [
    ["Yes", "Single", 125.0],
    ["No", "Married", 100.0],
    ["No", "Single", 70.0],
    ["Yes", "Married", 120.0],
    ["No", "Divorced", 95.0],
    ["No", "Married", 60.0],
    ["Yes", "Divorced", 220.0],
    ["No", "Single", 85.0],
    ["No", "Married", 75.0],
    ["No", "Single", 90.0],
]


def reference_encode(rows, nominal):
    """Plain-Python one-hot of the given columns (sorted categories), others as floats."""
    cols = list(zip(*rows))
    out_cols, names = [], []
    for j, col in enumerate(cols):
        if j in nominal:
            for c in sorted(set(col)):
                out_cols.append([1.0 if v == c else 0.0 for v in col])
                names.append(f"x{j}_{c}")
        else:
            out_cols.append([float(v) for v in col])
            names.append(f"x{j}")
    return np.array(out_cols).T, names


def test_loan_table_matches_reference():
    enc = OneHotEncoder()
    Z = enc.fit_transform(ROWS)
    ref, names = reference_encode(ROWS, {0, 1})
    assert Z.dtype == np.float32 and Z.shape == (10, 6)
    np.testing.assert_array_equal(Z, ref)
    assert list(enc.get_feature_names_out()) == names == [
        "x0_No", "x0_Yes", "x1_Divorced", "x1_Married", "x1_Single", "x2"]
    assert enc.nominal_columns_ == [0, 1]
    assert [list(c) for c in enc.categories_] == [["No", "Yes"], ["Divorced", "Married", "Single"]]
    # every one-hot block sums to one per row
    assert np.all(Z[:, :2].sum(1) == 1) and np.all(Z[:, 2:5].sum(1) == 1)


def test_matches_sklearn_on_nominal_block():
    sk = pytest.importorskip("sklearn.preprocessing")
    X = np.array(ROWS, dtype=object)
    ours = OneHotEncoder(dtype=np.float64).fit_transform(X)
    theirs = np.asarray(sk.OneHotEncoder().fit_transform(X[:, :2]).todense())  # sparse by default in every version
    np.testing.assert_array_equal(ours[:, :5], theirs)
    np.testing.assert_array_equal(ours[:, 5], X[:, 2].astype(float))


def test_object_array_list_and_string_array_inputs():
    X = np.array(ROWS, dtype=object)
    a = OneHotEncoder().fit_transform(X)
    b = OneHotEncoder().fit_transform(ROWS)
    np.testing.assert_array_equal(a, b)
    S = np.array([r[:2] for r in ROWS])            # a '<U..' array: every column nominal
    enc = OneHotEncoder()
    Zs = enc.fit_transform(S)
    assert enc.nominal_columns_ == [0, 1]
    np.testing.assert_array_equal(Zs, a[:, :5])


def test_numeric_array_passes_through():
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    enc = OneHotEncoder(dtype=np.float64)
    np.testing.assert_array_equal(enc.fit_transform(X), X)
    assert enc.nominal_columns_ == [] and list(enc.get_feature_names_out()) == ["x0", "x1", "x2"]


def test_explicit_integer_column_is_encoded():
    rows = [[3, 1.5], [1, 2.5], [3, 0.5], [2, 1.0]]
    enc = OneHotEncoder(columns=[0], dtype=np.float64)
    Z = enc.fit_transform(rows)
    np.testing.assert_array_equal(Z, [[0, 0, 1, 1.5], [1, 0, 0, 2.5], [0, 0, 1, 0.5], [0, 1, 0, 1.0]])
    assert list(enc.get_feature_names_out(["grade", "w"])) == ["grade_1", "grade_2", "grade_3", "w"]
    # negative index and default on the same data (all numbers: nothing nominal)
    assert OneHotEncoder(columns=[-2]).fit(rows).nominal_columns_ == [0]
    assert OneHotEncoder().fit(rows).nominal_columns_ == []


def test_numpy_string_scalars_match_python_strings():
    X = np.array([[np.str_("a"), 1.0], ["b", 2.0]], dtype=object)
    enc = OneHotEncoder().fit(X)
    np.testing.assert_array_equal(enc.transform([["a", 5.0], [np.str_("b"), 6.0]]),
                                  [[1, 0, 5], [0, 1, 6]])


def test_unknown_category_error_names_column_and_value():
    enc = OneHotEncoder().fit(ROWS)
    with pytest.raises(ValueError, match=r"column 1 has the unknown category 'Widowed'"):
        enc.transform([["No", "Widowed", 50.0]])


def test_unknown_category_ignore_gives_zero_block():
    enc = OneHotEncoder(handle_unknown="ignore").fit(ROWS)
    Z = enc.transform([["Maybe", "Married", 50.0], ["Yes", "Widowed", 1.0]])
    np.testing.assert_array_equal(Z, [[0, 0, 0, 1, 0, 50], [0, 1, 0, 0, 0, 1]])


def test_dtype_and_fit_transform_equals_fit_then_transform():
    enc = OneHotEncoder(dtype=np.float64)
    a = enc.fit_transform(ROWS)
    b = enc.transform(ROWS)
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="float32 or float64"):
        OneHotEncoder(dtype=np.int32)


def test_mixed_type_nominal_column_is_sorted_by_type():
    rows = [["a", 1.0], [2, 2.0], ["b", 3.0], [1, 4.0]]
    enc = OneHotEncoder().fit(rows)
    assert list(enc.categories_[0]) == [1, 2, "a", "b"]
    assert enc.transform(rows)[:, :4].argmax(1).tolist() == [2, 1, 3, 0]


@pytest.mark.parametrize("bad,exc,msg", [
    ([["a", 1.0], ["b"]], ValueError, "2-D"),
    ([], ValueError, "2-D"),
    ([["a"], [None]], ValueError, "missing value"),
    (np.zeros((2, 2), dtype="datetime64[s]"), TypeError, "numbers, strings or objects"),
    (np.array(["a", "b"], dtype=object), ValueError, "2-D"),
])
def test_bad_tables(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        OneHotEncoder().fit(bad)


def test_bad_parameters_and_usage():
    with pytest.raises(ValueError, match="handle_unknown"):
        OneHotEncoder(handle_unknown="warn")
    with pytest.raises(TypeError, match="columns"):
        OneHotEncoder(columns="Home Owner")
    with pytest.raises(ValueError, match="out of range"):
        OneHotEncoder(columns=[5]).fit(ROWS)
    with pytest.raises(ValueError, match="unknown column name"):
        OneHotEncoder(columns=["Home Owner"]).fit(ROWS)
    with pytest.raises(RuntimeError, match="not fitted"):
        OneHotEncoder().transform(ROWS)
    enc = OneHotEncoder().fit(ROWS)
    with pytest.raises(ValueError, match="fitted on 3"):
        enc.transform([r[:2] for r in ROWS])
    with pytest.raises(ValueError, match="name 3 columns"):
        enc.get_feature_names_out(["a"])


def test_string_in_numeric_column_is_rejected_clearly():
    enc = OneHotEncoder(columns=[0]).fit(ROWS)
    with pytest.raises(ValueError, match="column 1 is numeric"):
        enc.transform(ROWS)


def test_dataframe_keeps_column_names():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(ROWS, columns=["Home Owner", "Marital Status", "Annual Income"])
    enc = OneHotEncoder()
    Z = enc.fit_transform(df)
    np.testing.assert_array_equal(Z, OneHotEncoder().fit_transform(ROWS))
    assert list(enc.get_feature_names_out())[:2] == ["Home Owner_No", "Home Owner_Yes"]
    assert OneHotEncoder(columns=["Marital Status"]).fit(df).nominal_columns_ == [1]
