"""One-hot encoding a small mixed table, then fitting a classifier on it.

The classic textbook loan table (Tan, Steinbach & Kumar, "Introduction to Data
Mining"): two nominal attributes (Home Owner, Marital Status), one numeric
attribute (Annual Income, in thousands) and the class label Defaulted Borrower.

``fastnn.data.OneHotEncoder`` finds the nominal (string) columns by itself,
replaces each by one 0/1 column per category (sorted) and passes the numeric
column through, keeping the column order.  The income column is then
standardized and a softmax classifier (one Linear layer) is trained with a
class-weighted cross-entropy (3 "Yes" rows against 7 "No").  Finally a new
applicant is encoded, including one with a marital status never seen in
training (handle_unknown="ignore" encodes it as all zeros).

Run: python examples/one_hot_table.py   (about a second)
"""
import numpy as np

import fastnn as fn
from fastnn.data import OneHotEncoder

COLUMNS = ["Home Owner", "Marital Status", "Annual Income"]
ROWS = [  # Home Owner, Marital Status, Annual Income (K)   -> Defaulted Borrower
    ["Yes", "Single", 125.0],     # No
    ["No", "Married", 100.0],     # No
    ["No", "Single", 70.0],       # No
    ["Yes", "Married", 120.0],    # No
    ["No", "Divorced", 95.0],     # Yes
    ["No", "Married", 60.0],      # No
    ["Yes", "Divorced", 220.0],   # No
    ["No", "Single", 85.0],       # Yes
    ["No", "Married", 75.0],      # No
    ["No", "Single", 90.0],       # Yes
]
DEFAULTED = np.array([0, 0, 0, 0, 1, 0, 0, 1, 0, 1])   # 1 = "Yes"


def main():
    enc = OneHotEncoder(handle_unknown="ignore")
    Z = enc.fit_transform(ROWS)                        # float32, shape (10, 6)
    names = list(enc.get_feature_names_out(COLUMNS))
    print(f"encoded shape: {Z.shape}")
    print("feature names:", names)
    widths = [len(n) + 2 for n in names]
    print("row" + "".join(f"{n:>{w}s}" for n, w in zip(names, widths)))
    for i, row in enumerate(Z):
        print(f"{i + 1:>3d}" + "".join(f"{v:>{w}g}" for v, w in zip(row, widths)))

    # Standardize the income column (the last one); one-hot columns stay 0/1.
    income = names.index("Annual Income")
    mean, std = Z[:, income].mean(), Z[:, income].std()
    Z[:, income] = (Z[:, income] - mean) / std

    model = fn.nn.Linear(Z.shape[1], 2, seed=0)
    counts = np.bincount(DEFAULTED)
    weight = len(DEFAULTED) / (2.0 * counts)               # "balanced" class weights
    loss = fn.losses.CrossEntropyLoss(weight=weight)
    opt = fn.optim.SGD(list(model.parameters()), lr=0.5)
    fn.train.fit(model, loss, opt, Z, DEFAULTED, epochs=300, batch_size=10, shuffle=False,
                 progress=False)
    pred = model.forward(Z).argmax(axis=1)
    print(f"class weights (No, Yes): {weight.round(3).tolist()}")
    print(f"training accuracy: {np.mean(pred == DEFAULTED):.2f}")

    new = [["No", "Single", 80.0], ["Yes", "Widowed", 150.0]]   # "Widowed" was never seen
    Zn = enc.transform(new)
    print("new applicants encoded:")
    for r, z in zip(new, Zn):
        print(f"  {r} -> {z.tolist()}")
    Zn[:, income] = (Zn[:, income] - mean) / std
    proba = np.exp(model.forward(Zn))
    proba /= proba.sum(axis=1, keepdims=True)
    for r, p in zip(new, proba):
        print(f"  P(default | {r}) = {p[1]:.2f}")


if __name__ == "__main__":
    main()
