"""scikit-learn compatible multi-layer perceptrons on fastnn's kernels.

``MLPClassifier`` and ``MLPRegressor`` take scikit-learn's constructor parameters
with scikit-learn's meaning, expose the same fitted attributes and follow the same
training algorithm step by step: Glorot-uniform initialization and minibatch
shuffling drawn from the same ``RandomState`` stream, the same loss (including
the ``alpha * 0.5 * ||W||^2 / n`` L2 term per batch), scikit-learn's own Adam and
SGD/momentum/Nesterov update rules and learning-rate schedules, its tol /
n_iter_no_change / early-stopping logic, and L-BFGS through
``scipy.optimize.minimize``.  At equal settings (and float64) the fitted weights
agree with scikit-learn's to rounding; in float32 they agree statistically.

The network engine (flat buffers, fused kernels) is ``fastnn.estimators._mlp_engine``.
"""
import numbers
import warnings

import numpy as np

from fastnn.estimators._common import keep_params, validate_data
import scipy.optimize
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils import shuffle as _sk_shuffle
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted

from fastnn import _checks as C
from fastnn._engine.config import n_threads_for
from fastnn._kernels import _data
from fastnn.estimators._mlp_engine import HIDDEN_ACTIVATIONS, SGD, Adam, Net

__all__ = ["MLPClassifier", "MLPRegressor"]

_SOLVERS = ("lbfgs", "sgd", "adam")
_STOCHASTIC = ("sgd", "adam")


def _dense_input(X):
    """A dense ndarray for validated X (sparse matrices and arrays are densified)."""
    if hasattr(X, "toarray"):
        return X.toarray()
    return X


# ---------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------


class _BaseMLP(BaseEstimator):
    """Shared fit machinery of MLPClassifier and MLPRegressor (not public)."""

    _loss_name = "log_loss"

    # -- validation ------------------------------------------------------------
    def _check_params(self):
        name = type(self).__name__
        hls = self.hidden_layer_sizes
        if isinstance(hls, numbers.Integral) and not isinstance(hls, (bool, np.bool_)):
            hls = [hls]
        try:
            hls = list(hls)
        except TypeError:
            raise ValueError(f"The 'hidden_layer_sizes' parameter of {name} must be an int or a "
                             f"sequence of ints. Received: {self.hidden_layer_sizes!r}") from None
        for h in hls:
            if isinstance(h, (bool, np.bool_)) or not isinstance(h, numbers.Integral):
                raise ValueError(f"hidden_layer_sizes must hold ints. Received: {self.hidden_layer_sizes!r}")
        if any(h <= 0 for h in hls):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hls)
        C.option(self.activation, "activation", HIDDEN_ACTIVATIONS)
        C.option(self.solver, "solver", _SOLVERS)
        C.real(self.alpha, "alpha", low=0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            C.integer(self.batch_size, "batch_size", 1)
        C.option(self.learning_rate, "learning_rate", ("constant", "invscaling", "adaptive"))
        C.real(self.learning_rate_init, "learning_rate_init", low=0.0, low_open=True)
        C.real(self.power_t, "power_t", low=0.0)
        C.integer(self.max_iter, "max_iter", 1)
        C.flag(self.shuffle, "shuffle")
        C.real(self.tol, "tol", low=0.0)
        C.flag(self.warm_start, "warm_start")
        C.real(self.momentum, "momentum", 0.0, 1.0)
        C.flag(self.nesterovs_momentum, "nesterovs_momentum")
        C.flag(self.early_stopping, "early_stopping")
        C.real(self.validation_fraction, "validation_fraction", 0.0, 1.0, high_open=True)
        C.real(self.beta_1, "beta_1", 0.0, 1.0, high_open=True)
        C.real(self.beta_2, "beta_2", 0.0, 1.0, high_open=True)
        C.real(self.epsilon, "epsilon", low=0.0, low_open=True)
        C.integer(self.n_iter_no_change, "n_iter_no_change", 1, allow_inf=True)
        C.integer(self.max_fun, "max_fun", 1)
        if not isinstance(self.verbose, (bool, np.bool_, numbers.Integral)):
            raise ValueError(f"The 'verbose' parameter of {name} must be a bool or an int. "
                             f"Received: verbose={self.verbose!r}")
        check_random_state(self.random_state)
        return hls

    def _check_solver(self):
        if self.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def __getstate__(self):
        # The engine's coefs_/intercepts_ are views of its flat buffer, a relation
        # that pickling (and deepcopy) would silently break: drop the engine, it is
        # rebuilt from coefs_/intercepts_ by the next fit or predict.
        state = super().__getstate__()
        state = dict(state)
        state.pop("_net", None)
        return state

    # -- initialization ----------------------------------------------------------
    def _init_coef(self, fan_in, fan_out, dtype):
        factor = 2.0 if self.activation == "logistic" else 6.0
        bound = np.sqrt(factor / (fan_in + fan_out))
        coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
        intercept = self._random_state.uniform(-bound, bound, fan_out)
        return coef.astype(dtype, copy=False), intercept.astype(dtype, copy=False)

    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._out_activation()
        self.coefs_, self.intercepts_ = [], []
        self._best_theta = None   # early stopping's best weights (scikit-learn's _best_coefs)
        for a, b in zip(layer_units[:-1], layer_units[1:]):
            c, i = self._init_coef(a, b, dtype)
            self.coefs_.append(c)
            self.intercepts_.append(i)
        if self.solver in _STOCHASTIC:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _make_net(self, layer_units, dtype):
        """The engine on the current coefs_/intercepts_ (copied into its flat buffer);
        coefs_ and intercepts_ then become views of that buffer."""
        net = getattr(self, "_net", None)
        kind = self.out_activation_
        if (net is None or net.units != tuple(layer_units) or net.dtype != dtype
                or net.out_kind != kind or net.act != HIDDEN_ACTIVATIONS[self.activation]):
            net = Net(layer_units, self.activation, kind, dtype)
        net.load(self.coefs_, self.intercepts_)
        self._net = net
        self.coefs_, self.intercepts_ = net.views()
        return net

    # -- targets ---------------------------------------------------------------
    def _targets(self, y, dtype):
        """The loss kernels' target for the (2-D) training y."""
        kind = self.out_activation_
        if kind == "softmax":
            return np.ascontiguousarray(np.argmax(y, axis=1), dtype=np.intp)
        if kind == "logistic":
            t = np.where(y, 1.0, -1.0).astype(dtype)
            return np.ascontiguousarray(t)
        return np.ascontiguousarray(y, dtype=dtype)

    # -- fit -------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self._check_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = C.sample_weight(sample_weight, X.shape[0], X.dtype)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        layer_units = [n_features] + hidden + [y.shape[1]]
        if not first_pass:
            fitted = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
            if fitted != layer_units:
                raise ValueError(
                    f"the fitted network has layer sizes {fitted}, but hidden_layer_sizes and "
                    f"this X, y need {layer_units}; fit without warm_start to start over")
        self.n_outputs_ = y.shape[1]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        dtype = self.coefs_[0].dtype if self.coefs_[0].dtype in (np.float32, np.float64) else X.dtype
        if X.dtype != dtype:
            X = X.astype(dtype)
        X = np.ascontiguousarray(_dense_input(X))
        net = self._make_net(layer_units, dtype)
        if self.solver in _STOCHASTIC:
            self._fit_stochastic(net, X, y, sample_weight, incremental)
        else:
            self._fit_lbfgs(net, X, y, sample_weight)
        if not np.all(np.isfinite(net.theta)):
            raise ValueError("Solver produced non-finite parameter weights. The input data may"
                             " contain large values and need to be preprocessed.")
        return self

    def _fit_lbfgs(self, net, X, y, sample_weight):
        target = self._targets(y, net.dtype)
        sw_sum = X.shape[0] if sample_weight is None else float(sample_weight.sum())
        alpha = float(self.alpha)
        nt = n_threads_for(X.shape[0] * max(net.units))
        theta, grad = net.theta, net.grad

        def fun(x):
            theta[...] = x
            loss = net.loss_grad(X, target, sample_weight, sw_sum, alpha, 1.0, nt)
            # a new array each call: scipy may keep the previous gradient
            return loss, grad.astype(np.float64)

        res = scipy.optimize.minimize(
            fun, theta.astype(np.float64), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        if res.status != 0:
            msg = res.message.decode("latin1") if isinstance(res.message, bytes) else res.message
            warnings.warn(
                "lbfgs failed to converge after %d iteration(s) (status=%d):\n%s\n\n"
                "Increase the number of iterations to improve the convergence (max_iter=%d)."
                % (res.nit, res.status, msg, self.max_iter), ConvergenceWarning, stacklevel=3)
        self.n_iter_ = min(res.nit, self.max_iter)
        self.loss_ = float(res.fun)
        theta[...] = res.x

    def _make_optimizer(self, net):
        if self.solver == "sgd":
            return SGD(net, self.learning_rate_init, self.learning_rate, self.momentum,
                        self.nesterovs_momentum, self.power_t)
        return Adam(net, self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon)

    def _fit_stochastic(self, net, X, y, sample_weight, incremental):
        opt = getattr(self, "_optimizer", None)
        if (not incremental or opt is None or not hasattr(opt, "grad_scale")
                or getattr(opt, "_size", None) != net.size):
            opt = self._optimizer = self._make_optimizer(net)
            opt._size = net.size
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            stratify = y if (self._is_classifier and self.n_outputs_ == 1) else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X, y, random_state=self._random_state, test_size=self.validation_fraction,
                    stratify=stratify)
                sw_train = sw_val = None
            else:
                X_train, X_val, y_train, y_val, sw_train, sw_val = train_test_split(
                    X, y, sample_weight, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                                 "or the size of your dataset.")
            if self._is_classifier:
                y_val = self._label_binarizer.inverse_transform(y_val)
            X_train = np.ascontiguousarray(X_train)
            best_theta = getattr(self, "_best_theta", None)
            if best_theta is None or best_theta.shape != net.theta.shape:
                best_theta = net.theta.copy()
        else:
            X_train, y_train, sw_train = X, y, sample_weight
            X_val = y_val = sw_val = None

        n_samples = X_train.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than "
                              "sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        target = self._targets(y_train, net.dtype)
        sample_idx = np.arange(n_samples, dtype=int)
        bounds = [(s, min(s + batch_size, n_samples)) for s in range(0, n_samples, batch_size)]
        nt = n_threads_for(batch_size * max(net.units))
        alpha = float(self.alpha)
        shuffle = self.shuffle
        dtype = net.dtype
        Xbufs, tbufs = {}, {}
        theta = net.theta
        step = opt.step
        loss_grad = net.loss_grad
        try:
            self.n_iter_ = 0
            for it in range(self.max_iter):
                if shuffle:
                    sample_idx = _sk_shuffle(sample_idx, random_state=self._random_state)
                    idx_all = np.ascontiguousarray(sample_idx, dtype=np.intp)
                accumulated_loss = 0.0
                for lo, hi in bounds:
                    nb = hi - lo
                    if shuffle:
                        idx = idx_all[lo:hi]
                        Xb = Xbufs.get(nb)
                        if Xb is None:
                            Xb = Xbufs[nb] = np.empty((nb, X_train.shape[1]), dtype)
                            tbufs[nb] = np.empty((nb,) + target.shape[1:], target.dtype)
                        _data.gather_rows(X_train, idx, Xb, 1)
                        tb = tbufs[nb]
                        if target.ndim == 1:
                            target.take(idx, out=tb)
                        else:
                            _data.gather_rows(target, idx, tb, 1)
                        swb = None if sw_train is None else sw_train[idx]
                    else:
                        Xb = X_train[lo:hi]
                        tb = target[lo:hi]
                        swb = None if sw_train is None else sw_train[lo:hi]
                    sw_sum = nb if swb is None else float(swb.sum())
                    batch_loss = loss_grad(Xb, tb, swb, sw_sum, alpha, opt.grad_scale, nt)
                    accumulated_loss += batch_loss * nb
                    step(net, nt)
                self.n_iter_ += 1
                self.loss_ = accumulated_loss / n_samples
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                if early_stopping:
                    val_score = self._score(X_val, y_val, sample_weight=sw_val)
                    self.validation_scores_.append(val_score)
                    if self.verbose:
                        print("Validation score: %f" % self.validation_scores_[-1])
                    if val_score < self.best_validation_score_ + self.tol:
                        self._no_improvement_count += 1
                    else:
                        self._no_improvement_count = 0
                    if val_score > self.best_validation_score_:
                        self.best_validation_score_ = val_score
                        best_theta[...] = theta
                else:
                    if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                        self._no_improvement_count += 1
                    else:
                        self._no_improvement_count = 0
                    if self.loss_curve_[-1] < self.best_loss_:
                        self.best_loss_ = self.loss_curve_[-1]
                opt.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = ("Validation score did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    else:
                        msg = ("Training loss did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    if opt.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                                  "optimization hasn't converged yet." % self.max_iter,
                                  ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if early_stopping:
            self._best_theta = best_theta
            theta[...] = best_theta

    # -- prediction ------------------------------------------------------------
    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = validate_data(self, X, reset=False, accept_sparse=["csr", "csc"],
                               dtype=(np.float64, np.float32))
            X = _dense_input(X)
        dtype = self.coefs_[0].dtype
        units = [X.shape[1]] + [c.shape[1] for c in self.coefs_]
        net = getattr(self, "_net", None)
        if net is None or not all(np.shares_memory(c, net.theta)
                                  for c in self.coefs_ + self.intercepts_) \
                or net.units != tuple(units) or net.act != HIDDEN_ACTIVATIONS.get(self.activation) \
                or net.out_kind != self.out_activation_:
            # coefs_ were set or unpickled (or set_params changed the activation):
            # run on a fresh engine over a copy of them
            net = Net(units, self.activation, self.out_activation_, dtype)
            net.load(self.coefs_, self.intercepts_)
        X = np.ascontiguousarray(X, dtype=net.dtype)
        return net.predict_raw(X, n_threads_for(X.shape[0] * max(units)))

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            The input data (float32 input trains in float32, other input in float64).
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            The fitted model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)


_PARAMS_DOC = """
    Parameters
    ----------
{extra}    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation of the hidden layers.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'lbfgs' runs scipy.optimize.minimize(method="L-BFGS-B") on the packed
        parameters; 'sgd' is SGD with (Nesterov) momentum; 'adam' is
        scikit-learn's Adam.
    alpha : float, default=0.0001
        L2 penalty: ``alpha * 0.5 * ||W||^2 / n_samples`` added to the loss of each batch.
    batch_size : int or 'auto', default='auto'
        Minibatch size; 'auto' is min(200, n_samples). Not used by lbfgs.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Schedule of the sgd learning rate: 'invscaling' is
        ``learning_rate_init / (t + 1) ** power_t`` with t the number of samples seen;
        'adaptive' divides it by 5 when n_iter_no_change epochs do not improve by tol.
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs for sgd/adam, iterations for lbfgs.
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
        Initial weights, minibatch order and the early-stopping split.
    tol : float, default=1e-4
    verbose : bool, default=False
    warm_start : bool, default=False
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out validation_fraction of the data and stop when its score stops improving.
    validation_fraction : float, default=0.1
    beta_1, beta_2 : float, default=0.9, 0.999
    epsilon : float, default=1e-8
    n_iter_no_change : int, default=10
    max_fun : int, default=15000
        Maximum number of loss evaluations (lbfgs only).

    Attributes
    ----------
    loss_ : float
    best_loss_ : float or None
    loss_curve_ : list of float
    validation_scores_ : list of float or None
    best_validation_score_ : float or None
    t_ : int
        Number of training samples seen by the solver.
    coefs_ : list of ndarray of shape (fan_in, fan_out)
    intercepts_ : list of ndarray of shape (fan_out,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    n_iter_ : int
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron classifier, a drop-in for ``sklearn.neural_network.MLPClassifier``.

    Minimizes the log-loss (softmax cross-entropy for multiclass targets, logistic
    with one output per label for binary and multilabel targets) with scikit-learn's
    algorithm, on fastnn's fused kernels.
    """ + _PARAMS_DOC.replace("{extra}", "") + """    classes_ : ndarray or list of ndarray

    Examples
    --------
    >>> from fastnn.estimators import MLPClassifier
    >>> import numpy as np
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = [0, 1, 1, 0]
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0).fit(X, y)
    >>> clf.predict(X).shape
    (4,)
    """

    _is_classifier = True

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000):
        keep_params(self, locals())

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, reset=reset, multi_output=True,
                              accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError("`y` has classes not in `self.classes_`. "
                                 f"`self.classes_` has {self.classes_}. 'y' has {classes}.")
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def predict(self, X):
        """Predict class labels (or a label-indicator matrix for multilabel targets).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch of the stochastic solver over (X, y).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array of shape (n_classes,), default=None
            Every class of the problem; required on the first call.

        Returns
        -------
        self : object
        """
        if getattr(self, "classes_", None) is None and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        first = False
        if classes is not None:
            if getattr(self, "classes_", None) is not None:
                if not np.array_equal(self.classes_, unique_labels(classes)):
                    raise ValueError("`classes=%r` is not the same as on last call to "
                                     "partial_fit, was: %r" % (classes, self.classes_))
            else:
                self.classes_ = unique_labels(classes)
                first = True
        if first:
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``, of shape (n_samples, n_classes)."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron regressor, a drop-in for ``sklearn.neural_network.MLPRegressor``.

    Minimizes half the squared error (``loss="squared_error"``, identity output) or
    half the Poisson deviance (``loss="poisson"``, exponential output), with
    scikit-learn's algorithm on fastnn's fused kernels.  Single and multi-output.
    """ + _PARAMS_DOC.replace("{extra}", """    loss : {'squared_error', 'poisson'}, default='squared_error'
        Half squared error, or half Poisson deviance (log link, y >= 0).
""") + """
    Examples
    --------
    >>> from fastnn.estimators import MLPRegressor
    >>> import numpy as np
    >>> X = np.linspace(0, 1, 20).reshape(-1, 1); y = 2 * X.ravel()
    >>> reg = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(X, y)
    >>> reg.predict(X).shape
    (20,)
    """

    _is_classifier = False

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000):
        keep_params(self, locals())

    def _check_params(self):
        C.option(self.loss, "loss", ("squared_error", "poisson"))
        return super()._check_params()

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, reset=reset, multi_output=True, y_numeric=True,
                              accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' needs non-negative targets y. Received a minimum "
                             f"of {np.min(y)}")
        return X, y

    def predict(self, X):
        """Predict with the fitted network.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch of the stochastic solver over (X, y).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
